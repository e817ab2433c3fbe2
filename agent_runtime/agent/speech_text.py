"""Text as it should be spoken: no markdown, emoji, URLs or code; numbers said naturally.

Applied to each sentence on its way to TTS. History keeps the model's own text.
"""

from __future__ import annotations

import re
import unicodedata

# A fenced block, or an unclosed fence to the end (the chunker never cuts inside a fence).
_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`]*`?")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)?")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+", re.M)
_EMPHASIS = re.compile(r"[*_~#`|>\[\]{}<]")
_MONEY = re.compile(r"([$€£])\s?(\d{1,3}(?:,\d{3})*|\d+)(?:\.(\d{2}))?\b")
# Not glued to a word or a decimal ("v1.2", "3.14"); a full stop after it ends a sentence, so
# "…call 555-123-4567." is a phone number too.
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d\s().-]{8,}\d(?!\w|\.\d)")
_TIME = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b")
_PERCENT = re.compile(r"(\d)\s?%")
_SPACES = re.compile(r"[ \t]+")
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence")}


def _is_emoji(ch: str) -> bool:
    if ch in "\u200d\ufe0f\ufe0e":
        return True  # joiners and variation selectors glue emoji sequences
    category = unicodedata.category(ch)
    return category == "So" or (category == "Sk" and ord(ch) > 0x1F000) or 0x1F000 <= ord(ch) <= 0x1FAFF


def _money(match: re.Match[str]) -> str:
    one, many, cent, cents = _CURRENCY[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    text = f"{whole} {one if whole == 1 else many}"
    if match.group(3) and int(match.group(3)):
        part = int(match.group(3))
        text += f" and {part} {cent if part == 1 else cents}"
    return text


_DECIMAL = re.compile(r"\d+\.\d+")


def _phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if len(digits) < 10 or _DECIMAL.fullmatch(match.group(0)):
        return match.group(0)  # too short, or a number with decimals ("3.14159265358")
    # Said in groups, digit by digit, the way people read a number back: "5 5 5, 1 2 3, …".
    groups = [digits[:-10], digits[-10:-7], digits[-7:-4], digits[-4:]]
    return ", ".join(" ".join(g) for g in groups if g)


def _time(match: re.Match[str]) -> str:
    hour, minute = match.group(1), match.group(2)
    if minute == "00":
        return hour
    return f"{hour} {minute}" if not minute.startswith("0") else f"{hour} oh {minute[1]}"


def clean_for_speech(text: str) -> str:
    """One sentence (or any text) made speakable; returns "" when nothing is left to say."""
    text = _CODE_BLOCK.sub(" ", text)
    text = _INLINE_CODE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _HEADING.sub("", text)
    text = _BULLET.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = "".join(" " if _is_emoji(ch) else ch for ch in text)
    text = _MONEY.sub(_money, text)
    text = _PHONE.sub(_phone, text)
    text = _TIME.sub(_time, text)
    text = _PERCENT.sub(r"\1 percent", text)
    text = _SPACES.sub(" ", text.replace("\n", " "))
    return text.strip()
