"""textharmony.data.vocab: random-string vocabularies for the synthetic generator."""
from textharmony.charset import COMMON_ZH_CHARS
from textharmony.data.vocab import EN_WORDS, ZH_WORDS, load_vocab, main, random_vocab


def test_random_vocab_counts_alphabets_exclusion_and_determinism(tmp_path):
    held = frozenset(["ab", "cd"] + EN_WORDS[:5])
    a = random_vocab(300, 50, seed=1, exclude=held, en_len=(2, 3))
    assert a == random_vocab(300, 50, seed=1, exclude=held, en_len=(2, 3))
    assert a != random_vocab(300, 50, seed=2, exclude=held, en_len=(2, 3))
    rand_en, rand_zh = a[:300], a[300:350]
    assert len(set(rand_en)) == 300 and all(w.isascii() and w.islower() and 2 <= len(w) <= 3 for w in rand_en)
    assert len(set(rand_zh)) == 50 and all(c in COMMON_ZH_CHARS for w in rand_zh for c in w)
    assert not held & set(a)
    assert a[350:] == [w for w in EN_WORDS + ZH_WORDS if w not in held]
    assert random_vocab(3, 0, include_builtin=False, exclude=held) == random_vocab(3, 0, exclude=held)[:3]


def test_cli_round_trips_through_load_vocab(tmp_path, capsys):
    ex = tmp_path / "held.txt"
    ex.write_text("open\n出口\n", encoding="utf-8")
    out = tmp_path / "v.txt"
    assert main(["--out", str(out), "--en", "40", "--zh", "10", "--exclude", str(ex)]) == 0
    en, zh = load_vocab(str(out))
    assert "open" not in en and "出口" not in zh and len(en) >= 40 and len(zh) >= 10
    assert main(["--out", str(out), "--en", "-1"]) == 2
    assert main(["--out", str(out), "--exclude", str(tmp_path / "nope")]) == 2
    assert main(["--out", str(out), "--en", "0", "--zh", "1000", "--no-builtin"]) == 0   # 1-3 chars: enough
    assert capsys.readouterr().err.count("error: ") == 2
