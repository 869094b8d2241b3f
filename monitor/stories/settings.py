"""The ``dedup:`` section of the config: how items are folded into stories."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DedupSettings"]


class DedupSettings(BaseModel):
    """How items are folded into stories (the ``dedup:`` config section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_hours: float = Field(72.0, gt=0, description=(
        "A story stays open for duplicates this long after its last item; older stories never absorb new items."))
    threshold: float = Field(0.55, gt=0, lt=1, description=(
        "Containment at or above which an item is a copy of a story's member: the share of the shorter "
        "text's content shingles (word 3-grams inside a sentence, site furniture and stock sentences left "
        "out) that the other text has too. An excerpt is contained in its original, so it scores high."))
    num_perm: int = Field(48, ge=16, le=512, multiple_of=2, description=(
        "MinHash permutations of the candidate index: num_perm/2 bands of 2 rows each (a row per band and "
        "member in the state: the index's size and write cost)."))
    band_hits: int = Field(2, ge=1, le=8, description=(
        "A stored member is a candidate when this many of its LSH bands equal the item's: 2 of 24 bands "
        "find texts of Jaccard 0.5 with probability 0.98 (0.6: 0.998) and unrelated news rarely; they are "
        "there for edited copies, since copies that keep a sentence's end word for word are found through "
        "it."))
    shingle_words: int = Field(3, ge=1, le=8, description="Words per shingle.")
    min_words: int = Field(12, ge=1, description=(
        "Items with fewer content words than this (headline-only items) are deduplicated exactly only: "
        "too few shingles for a reliable similarity."))
    furniture_items: int = Field(3, ge=2, description=(
        "A sentence that this many items of one feed document carry (or half of a small one), each with "
        "text of its own besides, is that site's furniture (footer, share bar, follow-us line): it no "
        "longer counts as shared content. Two items of one feed that share sentences and nothing else "
        "teach them too."))
    boilerplate: list[str] = Field(default_factory=lambda: [
        "اقرأ أيضا", "إقرأ أيضا", "اقرأ أيضاً", "اقرأ المزيد", "اظهر المزيد", "أظهر المزيد", "شاهد أيضا",
        "زر الذهاب إلى الأعلى", "مواضيع ذات صلة", "تابعونا على",
    ], description=(
        "Seed furniture, known before anything is learned: a sentence that starts with one of these is "
        "dropped, the phrase is removed elsewhere (matched after normalization)."))
