"""ANLS: Average Normalized Levenshtein Similarity (ST-VQA / DocVQA / InfographicVQA).

Definition (Biten et al., "Scene Text Visual Question Answering", ICCV 2019, and the
Robust Reading Competition evaluation of DocVQA / InfographicVQA)::

    NL(a, o)  = Levenshtein(a, o) / max(|a|, |o|)
    s(a, o)   = 1 - NL(a, o)   if NL(a, o) < tau   else 0          (tau = 0.5)
    ANLS      = 1/N * sum_i max_j s(a_ij, o_i)

Both strings are lower-cased, stripped and have inner whitespace runs collapsed to one
space (as the RRC InfographicVQA/DocVQA script does: ``" ".join(s.strip().lower().split())``).
Two empty strings have NL = 0, so they score 1.

Boundary: with the formula above NL = 0.5 scores **0** (default). The RRC script itself
tests ``1 - NL < tau`` and therefore *keeps* 0.5 at NL = 0.5; it also divides by the length of
the *raw* (un-normalised) strings. ``rrc_script=True`` reproduces both of those details
(``1`` vs ``10``: 0.5 with it, 0 without; ``"ab  "`` vs ``abc``: 0.75 with it, 0.667 without). Published
DocVQA / InfographicVQA numbers come from the evaluation server, so the benchmark suites report
``rrc_script=True`` as their headline ``anls`` and the paper formula as ``anls_paper``.
"""
from __future__ import annotations

from collections.abc import Sequence

from ._common import as_answer_list, check_lengths, edit_distance, mean

__all__ = ["anls", "anls_score", "normalize_anls_text"]


def normalize_anls_text(text: str) -> str:
    """Lower-case, strip, and collapse whitespace runs to single spaces."""
    return " ".join(str(text).strip().lower().split())


def _nl(pred: str, gt: str, rrc_script: bool) -> float:
    p, g = normalize_anls_text(pred), normalize_anls_text(gt)
    dist = edit_distance(p, g)
    if rrc_script:
        # the RRC script: distance on normalised strings, length of the raw strings (.upper())
        length = max(len(str(gt).upper()), len(str(pred).upper()))
    else:
        length = max(len(p), len(g))
    return 0.0 if length == 0 else dist / length


def anls_score(prediction: str, answers, threshold: float = 0.5, rrc_script: bool = False) -> float:
    """ANLS of one prediction against one or several ground-truth answers.

    Args:
        prediction: the model's answer string.
        answers: a ground-truth string or a non-empty list of acceptable answers.
        threshold: tau; a candidate counts only when NL < tau (default 0.5).
        rrc_script: reproduce the RRC script's boundary (keep 1 - NL == tau) and its
            raw-length denominator instead of the paper formula.

    Returns:
        max over answers of (1 - NL if NL < tau else 0), in [0, 1].
    """
    gts = as_answer_list(answers)
    if not gts:
        raise ValueError("anls_score: at least one ground-truth answer is required")
    best = 0.0
    for gt in gts:
        nl = _nl(prediction, gt, rrc_script)
        if rrc_script:
            s = 1.0 - nl
            s = 0.0 if s < threshold else s
        else:
            s = 1.0 - nl if nl < threshold else 0.0
        best = max(best, s)
    return best


def anls(predictions: Sequence[str], references: Sequence, threshold: float = 0.5,
         rrc_script: bool = False, return_per_sample: bool = False) -> dict:
    """Corpus ANLS.

    Args:
        predictions: one answer string per question.
        references: per question, a ground-truth string or a list of acceptable answers.
        threshold / rrc_script: see :func:`anls_score`.
        return_per_sample: also return the per-question scores under ``"scores"``.

    Returns:
        ``{"anls": mean score in [0, 1], "count": number of questions}`` (+ ``"scores"``).
    """
    check_lengths(predictions, references, "anls")
    scores = [anls_score(p, r, threshold, rrc_script) for p, r in zip(predictions, references)]
    out = {"anls": mean(scores), "count": len(scores)}
    if return_per_sample:
        out["scores"] = scores
    return out
