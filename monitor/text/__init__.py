"""Text: Arabic normalization, tokenization and the multi-alias matcher (pure, no I/O).

    normalize.py  one translate table, equal to the camel-tools chain (property-tested)
    tokenize.py   tokens with offsets into the original text
    matcher.py    Aho-Corasick over normalized text, clitic- and spacing-aware

May import: nothing of the project but this package.
"""
