"""Build the demo's sample feeds from the five corpus articles (run once; output is committed).

    python examples/build_sample_feeds.py [CORPUS_DIR]

Writes three feeds to ``monitor/samples/feeds/``, in the shapes real Arabic
outlets publish: RSS 2.0 in UTF-8, Atom, and RSS 2.0 in windows-1256. Besides
the corpus articles they carry items that must NOT alert (العمر as "age",
قناة الميادين the TV channel, a tiger called النمر, a monastery الدير) and one
article republished by a second outlet under another headline, which must fold
into the first story instead of alerting twice.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "corpus"
OUT = ROOT / "monitor" / "samples" / "feeds"


def article(name: str) -> str:
    path = next(CORPUS.glob(f"{name}_*.txt"))
    return path.read_text(encoding="utf-8").strip()


def body_html(text: str) -> str:
    paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


A0, A1, A2, A3, A4 = (article(n) for n in ("000", "001", "002", "003", "004"))

# A3 republished: new headline, boilerplate, paragraphs reordered, one sentence edited.
_paras = [p for p in A0.split("\n") if p.strip()]
A0_REPUBLISHED = "\n".join(["اقرأ أيضا: تطورات الشرق السوري"] + _paras[1:3] + _paras[:1] + _paras[3:] + ["اظهر المزيد"])

FEEDS = {
    "nashra.xml": {
        "kind": "rss", "encoding": "utf-8",
        "title": "النشرة - أخبار سوريا", "link": "https://www.elnashra.example/",
        "items": [
            ("قسد تسيطر على حقل العمر النفطي والسباق الروسي الأميركي يحتدم في دير الزور", A0,
             "https://www.elnashra.example/news/show/1150001", "Mon, 23 Oct 2017 08:10:00 +0300"),
            ("هل تندرج معركة قسد المقبلة في دير الزور بسياق التفاهمات الروسية - الأميركية ؟", A1,
             "https://www.elnashra.example/news/show/1150002?utm_source=rss&utm_medium=feed",
             "Tue, 24 Oct 2017 11:30:00 +0300"),
            ("دراسة: متوسط العمر المتوقع في لبنان يرتفع إلى 79 عاما",
             "أظهرت دراسة حديثة أن متوسط العمر المتوقع للمواطنين ارتفع بفضل تحسن الرعاية الصحية، وأن كبار السن "
             "فوق هذا العمر يحتاجون إلى متابعة دورية.",
             "https://www.elnashra.example/news/show/1150003", "Tue, 24 Oct 2017 13:00:00 +0300"),
            ("قناة الميادين تطلق برنامجا حواريا جديدا",
             "أعلنت قناة الميادين الفضائية عن إطلاق برنامج حواري أسبوعي يستضيف مفكرين وكتابا من العالم العربي.",
             "https://www.elnashra.example/news/show/1150004", "Wed, 25 Oct 2017 09:00:00 +0300"),
        ],
    },
    "shamfm.xml": {
        "kind": "atom", "encoding": "utf-8",
        "title": "شام إف إم", "link": "https://www.shamfm.example/",
        "items": [
            ("البوكمال.. معركة دولية", A2.split("\n", 3)[-1],
             "https://www.shamfm.example/ar/news/77001", "2017-10-26T07:45:00+03:00"),
            ("3 آلاف انتحاري في دير الزور يتحضرون.. هذا ما سيفعلونه", A4.split("\n", 1)[-1],
             "https://www.shamfm.example/ar/news/77002", "2017-10-27T10:15:00+03:00"),
            ("ولادة شبل النمر الأبيض في حديقة الحيوانات",
             "استقبلت حديقة الحيوانات شبلا من فصيلة النمر الأبيض النادرة، وقال الأطباء البيطريون إن صحة الأم "
             "والصغير جيدة.",
             "https://www.shamfm.example/ar/news/77003", "2017-10-27T12:00:00+03:00"),
        ],
    },
    "enab.xml": {
        "kind": "rss", "encoding": "windows-1256",
        "title": "عنب بلدي", "link": "https://www.enabbaladi.example/",
        "items": [
            ("دير الزور.. المعقل الأخير", A3,
             "https://www.enabbaladi.example/archives/180001", "Sat, 28 Oct 2017 16:20:00 +0300"),
            ("سباق على نفط شرق الفرات بعد سقوط حقل العمر بيد قوات سوريا الديمقراطية", A0_REPUBLISHED,
             "https://www.enabbaladi.example/archives/180002", "Sat, 28 Oct 2017 18:00:00 +0300"),
            ("ترميم الدير الأثري في وادي النصارى يقترب من نهايته",
             "قال القائمون على ترميم الدير الأثري إن الأعمال ستنتهي قبل عيد الميلاد، وإن الرهبان سيستقبلون "
             "الزوار في كنيسة الدير القديمة.",
             "https://www.enabbaladi.example/archives/180003", "Sun, 29 Oct 2017 09:00:00 +0300"),
            ("أمطار غزيرة متوقعة على الساحل السوري",
             "توقعت مديرية الأرصاد الجوية هطول أمطار غزيرة على المناطق الساحلية مع انخفاض ملحوظ في درجات الحرارة.",
             "https://www.enabbaladi.example/archives/180004", "Sun, 29 Oct 2017 10:00:00 +0300"),
        ],
    },
}


def rss(feed: dict) -> str:
    items = "".join(
        f"""
    <item>
      <title>{escape(title)}</title>
      <link>{escape(link)}</link>
      <guid isPermaLink="true">{escape(link)}</guid>
      <pubDate>{date}</pubDate>
      <description>{escape(body_html(text))}</description>
    </item>"""
        for title, text, link, date in feed["items"]
    )
    return f"""<?xml version="1.0" encoding="{feed['encoding']}"?>
<rss version="2.0">
  <channel>
    <title>{escape(feed['title'])}</title>
    <link>{feed['link']}</link>
    <description>{escape(feed['title'])}</description>
    <language>ar</language>
    <ttl>15</ttl>{items}
  </channel>
</rss>
"""


def atom(feed: dict) -> str:
    entries = "".join(
        f"""
  <entry>
    <title>{escape(title)}</title>
    <link rel="alternate" href="{escape(link)}"/>
    <id>{escape(link)}</id>
    <updated>{date}</updated>
    <content type="html">{escape(body_html(text))}</content>
  </entry>"""
        for title, text, link, date in feed["items"]
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="ar">
  <title>{escape(feed['title'])}</title>
  <link href="{feed['link']}"/>
  <id>{feed['link']}</id>
  <updated>2017-10-29T10:00:00+03:00</updated>{entries}
</feed>
"""


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, feed in FEEDS.items():
        text = rss(feed) if feed["kind"] == "rss" else atom(feed)
        (OUT / name).write_bytes(text.encode(feed["encoding"]))
        print(f"wrote {OUT / name} ({len(feed['items'])} items, {feed['encoding']})")


if __name__ == "__main__":
    main()
