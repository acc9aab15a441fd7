"""Fictional people for the benchmarks, in several scripts (shared by bench/render.py and bench/send.py)."""

from __future__ import annotations

LATIN_FIRST = [
    "María", "José", "Ana", "Sofía", "Mateo", "Lucía", "João", "Inês", "Conceição", "Chloé", "Léa", "François",
    "Zoë", "Jürgen", "Björn", "Søren", "Łukasz", "Siobhán", "Ngozi", "Wanjiru", "Priya", "Rizal", "John", "Emily",
    "Michael", "Olivia", "Noah", "Giulia", "Dmitri", "Ayşe",
]  # fmt: skip
LATIN_LAST = [
    "García", "Rodríguez", "Martínez", "Gonçalves", "Araújo", "Lefèvre", "Müller", "Ødegård", "Nguyễn",
    "O'Brien", "de la Cruz", "van der Berg", "Smith", "Johnson", "Okafor", "Mwangi", "Sharma", "Bautista",
    "Rossi", "Kowalski", "Yılmaz", "Dubois",
]  # fmt: skip
ARABIC_FIRST = ["محمد", "فاطمة", "أحمد", "مريم", "يوسف", "نور", "خالد", "ليلى", "عمر", "سارة"]
ARABIC_LAST = ["عبد الله", "حسن", "السيد", "إبراهيم", "المصري", "منصور", "فاروق"]
JAPANESE_FIRST = ["花子", "太郎", "さくら", "健", "結衣", "翔太", "美咲", "大輔"]
JAPANESE_LAST = ["佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "山本"]
# Names by language, for the locales that are not written in Latin script.
SCRIPT_NAMES = {"ar": (ARABIC_FIRST, ARABIC_LAST), "ja": (JAPANESE_FIRST, JAPANESE_LAST)}
