"""textharmony.metrics.kie against hand-computed values: the answer parser, CER / WER, field P/R/F1 (overall and
per category), end-to-end document accuracy."""
import math

import pytest

from textharmony.metrics import cer, compute, document_accuracy, field_metrics, kie_metrics, parse_fields, wer
from textharmony.metrics.kie import normalize_name, normalize_value


def test_parse_fields_lines_json_and_noise():
    text = ("invoice number: INV-1\n- date：2024-03-17\n* time: 12:30\nthis line has no separator\n"
            "total:  12.50 \ninvoice number: SECOND\n: no name")
    assert parse_fields(text) == {"invoice number": "INV-1", "date": "2024-03-17", "time": "12:30",
                                  "total": "12.50"}
    assert parse_fields('{"total": "3.00", "count": 2, "none": null}') == {"total": "3.00", "count": "2", "none": ""}
    assert parse_fields('```json\n{"发票号码": "04512873"}\n```') == {"发票号码": "04512873"}
    assert parse_fields("{not json: but a line}") == {"{not json": "but a line}"}
    assert parse_fields("") == {} and parse_fields(None) == {}
    assert parse_fields({" a  b ": " x  y "}) == {"a b": "x y"}


def test_normalisation():
    assert normalize_name("Invoice_Number") == normalize_name("invoice-number") == "invoice number"
    assert normalize_value(" ＩＮＶ-1. ") == "inv-1"          # NFKC full-width, case, trailing '.'
    assert normalize_value("12.50。") == "12.50"


def test_wer_hand_computed():
    # "a b c d" -> "a x c": substitute b, delete d = 2; "e f" -> "e f g": insert g = 1; 3 / 6 reference words
    assert wer(["a x c", "e f g"], ["a b c d", "e f"]) == pytest.approx(0.5)
    assert wer(["A b"], ["a b"]) == pytest.approx(0.5)
    assert wer(["A b"], ["a b"], case_sensitive=False) == 0.0
    assert wer([""], [""]) == 0.0 and math.isinf(wer(["x"], [""]))
    assert cer(["kitten"], ["sitting"]) == pytest.approx(3 / 7)     # the recognition module's CER, reused
    with pytest.raises(ValueError):
        wer(["a"], [])


# three documents: predictions and references (references as [{"name", "value", "category"}])
PREDS = ["Invoice_Number: inv-1\ndate: 2024-03-18\ntotal: 12.50.\ncashier: Bob",
         {"total": "3.00", "company": ""},          # an empty value counts as not predicted
         "total: 5"]
REFS = [[{"name": "invoice number", "value": "INV-1", "category": "invoice_number"},
         {"name": "date", "value": "2024-03-17", "category": "date"},
         {"name": "total", "value": "12.50", "category": "total"}],
        [{"name": "date", "value": "2024-01-01", "category": "date"},
         {"name": "total", "value": "3.00", "category": "total"},
         {"name": "company", "value": "ACME", "category": "company"}],
        [{"name": "total", "value": "5", "category": "total"}]]


def test_field_metrics_hand_computed():
    m = field_metrics(PREDS, REFS)
    # TP: invoice number (name and value normalised), total x3; predicted 4 + 1 + 1 = 6; reference 3 + 3 + 1 = 7
    assert (m["tp"], m["num_pred"], m["num_ref"]) == (4, 6, 7)
    assert m["precision"] == pytest.approx(4 / 6) and m["recall"] == pytest.approx(4 / 7)
    assert m["f1"] == pytest.approx(8 / 13)                   # 2 * (2/3) * (4/7) / (2/3 + 4/7)
    pc = m["per_category"]
    assert pc["total"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 3, "num_pred": 3, "num_ref": 3}
    assert (pc["date"]["tp"], pc["date"]["num_pred"], pc["date"]["num_ref"], pc["date"]["f1"]) == (0, 1, 2, 0.0)
    assert pc["invoice_number"]["f1"] == 1.0
    assert pc["company"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "num_pred": 0, "num_ref": 1}
    assert pc["unknown"]["num_pred"] == 1 and pc["unknown"]["num_ref"] == 0      # "cashier" was not asked


def test_categories_argument_and_mapping_references():
    refs = [{"Total": "9"}, {"Date": "1", "Total": "2"}]
    preds = ["total: 9", "date: 1\ntotal: 3"]
    m = field_metrics(preds, refs, categories=[{"Total": "amount"}, {"Date": "when", "Total": "amount"}])
    assert (m["tp"], m["num_pred"], m["num_ref"]) == (2, 3, 3)
    assert m["per_category"]["amount"]["recall"] == pytest.approx(0.5)
    assert m["per_category"]["when"]["f1"] == 1.0
    # without categories each name is its own category (normalised)
    assert set(field_metrics(preds, refs)["per_category"]) == {"total", "date"}
    assert field_metrics([], [])["f1"] == 0.0


def test_document_accuracy_and_kie_metrics():
    assert document_accuracy(PREDS, REFS) == pytest.approx(1 / 3)               # only the third is all right
    assert document_accuracy(["total: 5\nextra: 1"], [{"total": "5"}]) == 0.0    # an extra field is wrong too
    m = kie_metrics(PREDS, REFS)
    assert m["document_accuracy"] == pytest.approx(1 / 3) and m["documents"] == 3
    # values aligned by name (raw, case-sensitive): INV-1/inv-1 3, 2024-03-17/-18 1, 12.50/12.50. 1,
    # 2024-01-01/"" 10, 3.00 0, ACME/"" 4, 5 0 -> 19 edits over 5+10+5+10+4+4+1 = 39 reference characters
    assert m["cer"] == pytest.approx(19 / 39)
    assert m["wer"] == pytest.approx(5 / 7)                                      # one word per value, 5 wrong
    assert compute("kie", PREDS, REFS)["f1"] == pytest.approx(8 / 13)
    assert compute("wer", ["a"], ["a b"]) == {"wer": 0.5}
