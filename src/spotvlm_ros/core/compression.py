"""Cloud text as data: sanitised, then compressed to a token budget without training."""

from __future__ import annotations

import re
from typing import Callable

TokenCounter = Callable[[str], int]

DEFAULT_MAX_CHARS = 2000
# A region label names an object ('traffic light', 'car 2', 'stop-sign'): short, and only
# letters, digits, spaces and a few joiners, so it can never spell a chat marker.
MAX_LABEL_CHARS = 40
_LABEL_JOINERS = frozenset(" -_'.,/()&+#")
# A sanitiser or compressor never looks further than this many raw characters per kept one,
# so a 1 MB answer costs no more than a long one.
_RAW_CHARS_PER_KEPT = 8
_CHARS_PER_TOKEN_SCAN = 16

# Chat-template and special-token markers (Qwen/ChatML, Llama, generic); removed so a cloud
# answer can never open a new turn or a system message in the edge prompt.
_MARKER = re.compile(r'<\|[^<>|]{0,64}\|>|\[/?INST\]|<</?SYS>>|</?s>|</?think>', re.IGNORECASE)
_FENCE = re.compile(r'```.*?(```|$)', re.DOTALL)
_JSON_LIST = re.compile(r'\[\s*\{.*?\}\s*\]', re.DOTALL)
_MARKDOWN = re.compile(r'(\*\*|__|`|^#+\s*|^\s*[-*\u2022]\s+|^\s*\d+[.)]\s+)', re.MULTILINE)
_SENTENCE_END = re.compile(r'(?<=[.!?;])\s+|\n+')
_NUMBER = re.compile(r'\d')
_SPACE_BEFORE_PUNCT = re.compile(r'\s+([.,;:!?])')
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

# Interjections, removed only where they open a sentence ("parked well" is content).
_INTERJECTION = re.compile(r"^(?:sure|certainly|of course|okay|ok|well|alright)\b[,!.]?\s*",
                           re.IGNORECASE)
# Hedges and framing that carry no content; removed wherever they stand.
_FILLER_PHRASES = re.compile(
    r"\b(?:in|from|within) (?:this|the) (?:image|picture|photo|frame|scene|view)\b,?\s*"
    r"|\b(?:it (?:appears|seems|looks) (?:like|that|as if)"
    r"|i (?:think|believe|can see|see|notice) (?:that )?"
    r"|based on (?:the|this) (?:image|picture|frame|scene|view),?"
    r"|as (?:you|we|one) can see,?"
    r"|it is (?:worth noting|important to note|clear) that"
    r"|(?:please )?note that"
    r"|overall,?|in summary,?|in conclusion,?|to summari[sz]e,?)\s*",
    re.IGNORECASE)
# Sentences that are pure conversation; dropped before anything else.
_FILLER_SENTENCE = re.compile(
    r"^(?:let me know|i hope|feel free|if you (?:have|need|want)|please let me|"
    r"hope this|is there anything|happy to help)", re.IGNORECASE)
# Words dropped first when one sentence alone is over budget. Never negations or numbers.
_DROPPABLE_WORDS = frozenset(
    'a an the is are was were be been being there which that currently very really quite '
    'just actually basically clearly seems appears also some'.split())

# Words that make a sentence worth keeping: things a robot meets, and their states.
_OBJECT_WORDS = frozenset(
    'car cars truck trucks bus buses van vehicle vehicles pedestrian pedestrians person people '
    'man woman child children cyclist cyclists bicycle bike motorcycle motorbike scooter '
    'train tram dog cat animal light lights signal sign signs crosswalk crossing lane lanes '
    'road street intersection junction sidewalk curb barrier cone cones pole tree wall door '
    'gate stairs obstacle box table chair cup bottle robot hand object objects'.split())
_STATE_WORDS = frozenset(
    'no not none never red green yellow amber stopped stopping moving parked waiting turning '
    'crossing approaching leaving open closed blocked clear empty occupied left right ahead '
    'behind front near far close fast slow wet dark bright broken falling running walking '
    'danger hazard warning yes'.split())


def word_count(text: str) -> int:
    """Tokens by whitespace-separated words: the fallback when no tokenizer is at hand."""
    return len(text.split())


def tokenizer_counter(tokenizer) -> TokenCounter:
    """A token counter from a Hugging Face tokenizer (anything with `encode`)."""
    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False)) if text else 0
    return count


def sanitize_cloud_text(text, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Cloud text made inert: no control or format characters, no chat markers, capped."""
    if max_chars <= 0 or text is None:
        return ''
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[: max_chars * _RAW_CHARS_PER_KEPT * 4]).decode('utf-8', 'replace')
    text = str(text)[: max_chars * _RAW_CHARS_PER_KEPT + 64]
    if not text.isprintable():
        text = ''.join(c if c.isprintable() else ' ' for c in text)
    text = _strip_markers(text)
    return _cap_chars(' '.join(text.split()), max_chars)


def sanitize_label(label, max_chars: int = MAX_LABEL_CHARS) -> str:
    """A region label made inert: cloud text rules, then only label characters, capped."""
    text = sanitize_cloud_text(label, max_chars * _RAW_CHARS_PER_KEPT)
    text = ''.join(c if c.isalnum() or c in _LABEL_JOINERS else ' ' for c in text)
    return _cap_chars(' '.join(text.split()), max_chars)


def compress_answer(text: str, budget_tokens: int,
                    count_tokens: TokenCounter = word_count) -> str:
    """The answer cut to `budget_tokens`: direct answer, objects, numbers and states first.

    Give it sanitised text (sanitize_cloud_text); grounding JSON and markdown are dropped here.
    """
    if budget_tokens <= 0 or not text:
        return ''
    text = str(text)[: max(DEFAULT_MAX_CHARS, budget_tokens * _CHARS_PER_TOKEN_SCAN)]
    text = _MARKDOWN.sub('', _JSON_LIST.sub(' ', _FENCE.sub(' ', text)))
    whole = ' '.join(text.split())
    if count_tokens(whole) <= budget_tokens:
        return whole
    sentences = [s for s in (_clean_sentence(s) for s in _SENTENCE_END.split(text)) if s]
    if sentences and count_tokens(sentences[0]) > budget_tokens:
        # The direct answer alone is too long: it stays, squeezed, rather than give way.
        sentences[0] = _shorten(sentences[0], budget_tokens, count_tokens)
    kept = _fill_by_priority(sentences, budget_tokens, count_tokens)
    return _enforce_budget(kept, budget_tokens, count_tokens)


def _strip_markers(text: str) -> str:
    """Remove chat markers until none is left, then break any half marker apart."""
    for _ in range(8):  # removal can join halves into a new marker; a few passes settle it
        stripped = _MARKER.sub(' ', text)
        if stripped == text:
            break
        text = stripped
    return text.replace('<|', '< ').replace('|>', ' >')


def _cap_chars(text: str, max_chars: int) -> str:
    """At most `max_chars` characters, cut at a word boundary when one is near."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(' ')
    return (cut[:space] if space > max_chars // 2 else cut).rstrip()


def _clean_sentence(sentence: str) -> str:
    """A sentence without filler phrases and whitespace runs, capitalised; '' if pure filler."""
    sentence = ' '.join(sentence.split())
    if not sentence or _FILLER_SENTENCE.match(sentence):
        return ''
    sentence = _INTERJECTION.sub('', sentence)
    sentence = ' '.join(_FILLER_PHRASES.sub('', sentence).split())
    sentence = _SPACE_BEFORE_PUNCT.sub(r'\1', sentence).strip(' ,')
    if not any(c.isalnum() for c in sentence):
        return ''
    return sentence[0].upper() + sentence[1:]


def _sentence_score(sentence: str) -> int:
    """How much a sentence tells: numbers weigh most, then objects, then states."""
    words = _WORD.findall(sentence.lower())
    numbers = len(_NUMBER.findall(sentence))
    objects = sum(w in _OBJECT_WORDS for w in words)
    states = sum(w in _STATE_WORDS for w in words)
    return 3 * min(numbers, 3) + 2 * objects + states


def _priority_order(sentences: list) -> list:
    """Sentence indices by priority: the first (the direct answer), then by score, then order."""
    rest = sorted(range(1, len(sentences)), key=lambda i: (-_sentence_score(sentences[i]), i))
    return [0] + rest if sentences else []


def _fill_by_priority(sentences: list, budget: int, count: TokenCounter) -> str:
    """Greedily keep whole sentences by priority, printed in their original order."""
    chosen: list = []
    for index in _priority_order(sentences):
        trial = sorted(chosen + [index])
        if count(' '.join(sentences[i] for i in trial)) <= budget:
            chosen = trial
    return ' '.join(sentences[i] for i in chosen)


def _shorten(sentence: str, budget: int, count: TokenCounter) -> str:
    """One sentence squeezed: droppable words go first, then words from the end."""
    words = [w for w in sentence.split() if w.lower().strip('.,;:!?') not in _DROPPABLE_WORDS]
    if not words:
        words = sentence.split()
    lo, hi = 0, len(words)  # largest prefix that fits, by bisection on the count
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(' '.join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return ' '.join(words[:lo])


def _enforce_budget(text: str, budget: int, count: TokenCounter) -> str:
    """Trim words from the end until the text fits, whatever the counter does."""
    words = text.split()
    while words and count(' '.join(words)) > budget:
        words.pop()
    result = ' '.join(words)
    return result if count(result) <= budget else ''

