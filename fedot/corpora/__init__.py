"""The model owner's public text: what it distils emulators on, learns ScaleOT's importance on and aligns with.

Never an evaluation task's test split. ``sources`` registers the corpora (WikiText-2's and pydocs' train/validation
articles, WikiText-103 train articles, Project Gutenberg books, and text the full model generates itself for
data-free distillation), each carved into train and validation by document; ``stream`` tokenises a corpus split once
into a memory-mapped file cached by content (17M tokens are never Python lists); ``mixture`` samples fixed-length
blocks from one corpus or a weighted mixture (``"gutenberg:0.7,wikitext103:0.3"``), reproducibly by (seed, step).
"""

from .mixture import OwnerText, parse_mixture
from .sources import CORPORA, text_corpora
from .stream import TokenStream, token_stream

__all__ = ["CORPORA", "OwnerText", "TokenStream", "parse_mixture", "text_corpora", "token_stream"]
