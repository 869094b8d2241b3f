"""The ``dedup:`` section of the config: how items are folded into stories."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DedupSettings"]


class DedupSettings(BaseModel):
    """How items are folded into stories (the ``dedup:`` config section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_hours: float = Field(72.0, gt=0, description=(
        "A story stays open for duplicates this long after its last item; older stories never absorb new items."))
    threshold: float = Field(0.4, gt=0, lt=1, description=(
        "Estimated Jaccard similarity of word 3-gram shingles at or above which two texts are the same story. "
        "Measured on the corpus: republished copies (new headline, boilerplate, reordered paragraphs, 3% word "
        "edits) score 0.71-1.0, a 60% excerpt 0.48-0.65, while the five corpus articles (same events, "
        "different articles) score at most 0.012 against each other."))
    num_perm: int = Field(128, ge=16, le=512, description="MinHash permutations (accuracy vs. cost).")
    shingle_words: int = Field(3, ge=1, le=8, description="Words per shingle.")
    min_words: int = Field(12, ge=1, description=(
        "Texts shorter than this (headline-only items) are deduplicated exactly only: "
        "too few shingles for a reliable similarity."))
    boilerplate: list[str] = Field(default_factory=lambda: [
        "اقرأ أيضا", "إقرأ أيضا", "اقرأ أيضاً", "اقرأ المزيد", "اظهر المزيد", "أظهر المزيد", "شاهد أيضا",
        "زر الذهاب إلى الأعلى", "مواضيع ذات صلة", "تابعونا على",
    ], description="Web leftovers removed before hashing and shingling (matched after normalization).")
