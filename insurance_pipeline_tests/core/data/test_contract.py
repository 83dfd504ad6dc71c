import io

import pandas as pd
import pytest

from insurance_pipeline.core.data.contract import (
    REQUIRED_COLUMNS,
    DataContractError,
    contract_violations,
    read_insurance_csv,
    to_typed_frame,
)
from insurance_pipeline.domain.hashing import file_sha256
from insurance_pipeline_tests.helpers import SHIPPED_CSV

pytestmark = pytest.mark.pure

CANONICAL_SHA256 = "505c1cbc2e63d0363bac59501563df2530aadf4cdb9cfee226f4ef32f5468281"


def raw(text: str) -> pd.DataFrame:
    return read_insurance_csv(io.StringIO(text))


def test_shipped_csv_is_the_canonical_file_and_conforms():
    assert file_sha256(SHIPPED_CSV) == CANONICAL_SHA256
    frame = read_insurance_csv(SHIPPED_CSV)
    assert contract_violations(frame) == []
    typed = to_typed_frame(frame)
    assert typed.shape == (1338, 7)
    assert typed["age"].dtype == "int64" and typed["charges"].dtype == "float64"


def test_missing_column_is_named():
    frame = read_insurance_csv(SHIPPED_CSV).drop(columns=["bmi"])
    problems = contract_violations(frame)
    assert any("missing required column(s): bmi" in p for p in problems)


def test_text_in_age_is_named_with_its_line():
    text = "age,sex,bmi,children,smoker,region,charges\n19,female,27.9,0,yes,southwest,16884.92\n"
    text += "abc,male,33.77,1,no,southeast,1725.55\n"
    problems = contract_violations(raw(text))
    assert problems == ["column 'age': 1 non-numeric value(s), e.g. ['abc'] on line(s) [3]"]


def test_empty_file_and_header_only():
    assert contract_violations(raw("")) == ["file is empty: no header or no data rows"]
    header_only = ",".join(REQUIRED_COLUMNS) + "\n"
    assert contract_violations(raw(header_only)) == ["file is empty: no header or no data rows"]


@pytest.mark.parametrize(
    "row, expected",
    [
        ("17,female,27.9,0,yes,southwest,100", "column 'age': 1 value(s) out of range"),
        ("30.5,female,27.9,0,yes,southwest,100", "column 'age': non-integer value(s)"),
        ("30,female,0,0,yes,southwest,100", "column 'bmi': 1 value(s) out of range"),
        ("30,female,20,-1,yes,southwest,100", "column 'children': 1 value(s) out of range"),
        ("30,female,20,1,yes,southwest,-5", "column 'charges': 1 value(s) out of range"),
        ("30,female,20,1,yes,southwest,", "column 'charges': 1 missing value(s)"),
        ("30,other,20,1,yes,southwest,10", "column 'sex': unexpected value(s) ['other']"),
        ("30,male,20,1,maybe,southwest,10", "column 'smoker': unexpected value(s) ['maybe']"),
        ("30,male,20,1,no,midwest,10", "column 'region': unexpected value(s) ['midwest']"),
        ("30,male,inf,1,no,northeast,10", "column 'bmi': infinite value(s)"),
    ],
)
def test_each_rule_names_its_field(row, expected):
    problems = contract_violations(raw(",".join(REQUIRED_COLUMNS) + "\n" + row + "\n"))
    assert any(p.startswith(expected) for p in problems), problems


def test_typed_frame_refuses_a_bad_frame_with_the_reasons():
    with pytest.raises(DataContractError, match="missing required column"):
        to_typed_frame(read_insurance_csv(SHIPPED_CSV).drop(columns=["region"]))
