"""Validation: every error and warning names table, column, example rows and the remedy."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ka_ml.config import DataConfig, ReadOptions
from ka_ml.data.coerce import MISSING_TOKENS, is_missing, stripped
from ka_ml.data.loader import load_history
from ka_ml.data.validate import validate_tables
from ka_ml.errors import DataIssue, DataValidationError

ORDERS = "account_id,order_date,amount\nA1,2024-01-05,10\nA2,2024-01-06,20\nA1,2024-02-05,5\n"
ACCOUNTS = "account_id,name\nA1,Acme\nA2,Borealis\n"


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def _errors(
    tmp_path: Path,
    files: dict[str, str],
    cfg: DataConfig | None = None,
    as_of: pd.Timestamp | None = None,
) -> list[DataIssue]:
    with pytest.raises(DataValidationError) as err:
        load_history(_folder(tmp_path, files), cfg or DataConfig(), as_of)
    assert all(i.level == "error" for i in err.value.issues)
    return err.value.issues


def _only(issues: list[DataIssue]) -> DataIssue:
    assert len(issues) == 1, [i.render() for i in issues]
    return issues[0]


# -- errors ---------------------------------------------------------------------------------


def test_missing_orders_lists_the_files_found_and_the_table_remap(tmp_path: Path) -> None:
    issue = _only(_errors(tmp_path, {"accounts.csv": ACCOUNTS, "sales_2024.csv": ORDERS}))
    assert issue.table == "orders" and issue.column is None
    assert "required table is missing" in issue.problem
    assert "orders.csv" in issue.problem and "orders.parquet" in issue.problem
    assert "'sales_2024.csv'" in issue.problem and "'accounts.csv'" in issue.problem
    assert "data.tables: {orders: sales}" in issue.remedy


def test_missing_orders_in_a_database_lists_its_tables(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "crm.sqlite")
    con.execute("CREATE TABLE sales (account_id TEXT, order_date TEXT, amount REAL)")
    con.commit()
    con.close()
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path / "crm.sqlite", DataConfig())
    issue = _only(err.value.issues)
    assert "database table 'orders'" in issue.problem and "found 'sales'" in issue.problem
    assert "data.tables" in issue.remedy


def test_missing_required_column_lists_columns_found_and_the_column_remap(
    tmp_path: Path,
) -> None:
    text = "account_id,order_date,Betrag\nA1,2024-01-05,10\n"
    issue = _only(_errors(tmp_path, {"orders.csv": text}))
    assert (issue.table, issue.column) == ("orders", "amount")
    assert "required column is missing" in issue.problem
    assert "'account_id', 'order_date', 'Betrag'" in issue.problem
    assert "data.columns: {orders: {amount: <source column name>}}" in issue.remedy


def test_a_column_remap_pointing_to_no_column_names_the_setting(tmp_path: Path) -> None:
    cfg = DataConfig(columns={"orders": {"amount": "Umsatz"}})
    text = "account_id,order_date,Betrag\nA1,2024-01-05,10\n"
    issue = _only(_errors(tmp_path, {"orders.csv": text}, cfg))
    assert (issue.table, issue.column) == ("orders", "amount")
    assert "data.columns.orders.amount points to 'Umsatz'" in issue.problem
    assert "exact name of the source column" in issue.remedy


def test_a_remap_to_a_missing_column_is_an_error_even_where_the_contract_name_exists(
    tmp_path: Path,
) -> None:
    """Seen: orders: {amount: net_value_eur} on an orders table with a gross 'amount' and
    no net_value_eur validated and trained on the gross amount without a word; the same
    for an optional column (tickets: {severity: prio})."""
    cfg = DataConfig(columns={"orders": {"amount": "net_value_eur"}})
    text = "account_id,order_date,amount,net_value\nA1,2024-01-05,10,8\n"
    issue = _only(_errors(tmp_path, {"orders.csv": text}, cfg))
    assert (issue.table, issue.column, issue.level) == ("orders", "amount", "error")
    assert issue.problem == (
        "data.columns.orders.amount points to 'net_value_eur', which is not among the columns "
        "found: 'account_id', 'order_date', 'amount', 'net_value'; the source's own 'amount' "
        "column would be read instead"
    )
    assert issue.remedy == (
        "did you mean 'net_value'? Set data.columns.orders.amount: net_value, or remove "
        "amount from data.columns.orders."
    )
    # an optional column: the table would be read without it
    cfg = DataConfig(columns={"tickets": {"severity": "prio"}})
    files = {
        "orders.csv": "account_id,order_date,amount\nA1,2024-01-05,10\n",
        "tickets.csv": "account_id,opened_at,priority\nA1,2024-01-06,high\n",
    }
    (tmp_path / "t").mkdir()
    issue = _only(_errors(tmp_path / "t", files, cfg))
    assert (issue.table, issue.column) == ("tickets", "severity")
    assert "points to 'prio'" in issue.problem and "'severity' would be read as missing" in (
        issue.problem
    )
    # the same from a database file, and a remap that is found reads its column
    con = sqlite3.connect(tmp_path / "crm.sqlite")
    con.execute("CREATE TABLE orders (account_id TEXT, order_date TEXT, amount REAL, net REAL)")
    con.execute("INSERT INTO orders VALUES ('A1', '2024-01-05', 10, 8)")
    con.commit()
    con.close()
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path / "crm.sqlite", DataConfig(columns={"orders": {"amount": "nett"}}))
    assert "points to 'nett'" in _only(err.value.issues).problem
    h = load_history(tmp_path / "crm.sqlite", DataConfig(columns={"orders": {"amount": "net"}}))
    assert h.orders["amount"].tolist() == [8.0]


def test_a_mistyped_column_remap_lists_the_sources_own_names_and_the_close_one(
    tmp_path: Path,
) -> None:
    """Seen: order_date: Invoice Dat listed 'columns found' mixing the tool's names
    ('account_id', 'amount') with the raw ones, and gave no 'did you mean'."""
    cfg = DataConfig(
        columns={"orders": {"account_id": "Kunde", "order_date": "Invoice Dat", "amount": "Betrag"}}
    )
    text = "Kunde,Invoice Date,Betrag\nA1,2024-01-05,10\n"
    issue = _only(_errors(tmp_path, {"orders.csv": text}, cfg))
    assert issue.problem.endswith("columns found: 'Kunde', 'Invoice Date', 'Betrag'")
    assert issue.remedy == (
        "did you mean 'Invoice Date'? Set data.columns.orders.order_date: Invoice Date."
    )
    unmapped = _only(_errors(tmp_path, {"orders.csv": "account_id,order_dat,amount\nA1,x,1\n"}))
    assert unmapped.remedy.startswith("did you mean 'order_dat'? rename the source column")
    assert "data.columns: {orders: {order_date: order_dat}}" in unmapped.remedy


def test_a_mistyped_config_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    from ka_ml.config import load_config
    from ka_ml.errors import ConfigError

    for typo, hint in (
        (
            "data: {read: {delimeter: ';'}}",
            "data.read.delimeter: Extra inputs are not permitted (did you mean 'delimiter'?)",
        ),
        ("data: {colums: {}}", "(did you mean 'columns'?)"),
        ("data: {columns: {tikets: {}}}", "(did you mean 'tikets' -> 'tickets'?)"),
        ("data: {zzz: 1}", "data.zzz: Extra inputs are not permitted. Fix"),
    ):
        (tmp_path / "c.yaml").write_text(typo)
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path / "c.yaml")
        assert hint in str(err.value)


def test_unparseable_dates_are_errors_quoting_file_lines(tmp_path: Path) -> None:
    text = "account_id,order_date,amount\nA1,2024-01-05,1\nA1,2024-13-45,2\nA2,soon,3\n"
    issue = _only(_errors(tmp_path, {"orders.csv": text}))
    assert (issue.table, issue.column) == ("orders", "order_date")
    assert issue.n_rows == 2
    assert issue.examples == (
        "row 3: account_id='A1', order_date='2024-13-45'",
        "row 4: account_id='A2', order_date='soon'",
    )
    assert "YYYY-MM-DD" in issue.remedy and "data.read.date_format" in issue.remedy


def test_bare_numbers_are_not_taken_for_dates(tmp_path: Path) -> None:
    text = "account_id,order_date,amount\nA1,2024-01-05,1\nA1,12,2\n"
    issue = _only(_errors(tmp_path, {"orders.csv": text}))
    assert issue.examples == ("row 3: account_id='A1', order_date='12'",)


def test_non_numeric_amounts_are_errors_that_point_to_decimal_comma(tmp_path: Path) -> None:
    text = (
        'account_id,order_date,amount\nA1,2024-01-05,10\nA1,2024-01-06,"12,50"\nA2,2024-01-07,n/v\n'
    )
    issue = _only(_errors(tmp_path, {"orders.csv": text}))
    assert (issue.table, issue.column, issue.n_rows) == ("orders", "amount", 2)
    assert issue.examples[0] == "row 3: account_id='A1', amount='12,50'"
    assert "not numbers" in issue.problem
    assert "data.read.decimal: ','" in issue.remedy


@pytest.mark.parametrize(
    ("name", "text", "column"),
    [
        ("usage.csv", "account_id,date,count\nA1,2024-01-01,many\n", "count"),
        ("surveys.csv", "account_id,date,score\nA1,2024-01-01,great\n", "score"),
        (
            "contracts.csv",
            "account_id,start_date,end_date,value\nA1,2024-01-01,2024-12-31,lots\n",
            "value",
        ),
    ],
)
def test_non_numeric_counts_scores_and_values_are_errors(
    tmp_path: Path, name: str, text: str, column: str
) -> None:
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS, name: text}))
    assert (issue.table, issue.column) == (name.removesuffix(".csv"), column)
    assert "row 2: account_id='A1'" in issue.examples[0]
    assert "correct or remove these rows" in issue.remedy


def test_an_empty_orders_table_is_an_error(tmp_path: Path) -> None:
    issue = _only(_errors(tmp_path, {"orders.csv": "account_id,order_date,amount\n"}))
    assert issue.table == "orders" and "empty" in issue.problem
    assert "orders is required" in issue.remedy


@pytest.mark.parametrize("content", ["account_id,date,count\n", ""])
def test_an_empty_optional_table_is_an_error_that_says_remove_the_file(
    tmp_path: Path, content: str
) -> None:
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS, "usage.csv": content}))
    assert issue.table == "usage" and "the table is empty" in issue.problem
    assert "remove the file to run without it" in issue.remedy


def test_duplicate_account_ids_are_an_error(tmp_path: Path) -> None:
    accounts = "account_id,name\nA1,Acme\nA2,Borealis\nA1,Acme Holding\n"
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS, "accounts.csv": accounts}))
    assert (issue.table, issue.column, issue.n_rows) == ("accounts", "account_id", 2)
    assert issue.examples == (
        "row 2: account_id='A1', name='Acme'",
        "row 4: account_id='A1', name='Acme Holding'",
    )
    assert "(1 ids; their rows differ in name)" in issue.problem
    assert "one row per account" in issue.remedy


def test_blank_account_ids_are_an_error(tmp_path: Path) -> None:
    text = "account_id,order_date,amount\nA1,2024-01-05,1\n  ,2024-01-06,2\nNULL,2024-01-07,3\n"
    issue = _only(_errors(tmp_path, {"orders.csv": text}))
    assert (issue.table, issue.column, issue.n_rows) == ("orders", "account_id", 2)
    assert issue.examples[0] == "row 3: account_id='  ', order_date='2024-01-06'"
    assert "fill in account_id" in issue.remedy


def test_blank_required_dates_are_an_error(tmp_path: Path) -> None:
    text = "account_id,order_date,amount\nA1,2024-01-05,1\nA2,,2\n"
    issue = _only(_errors(tmp_path, {"orders.csv": text}))
    assert (issue.table, issue.column) == ("orders", "order_date")
    assert issue.problem == "rows without a value in order_date"
    assert issue.examples == ("row 3: account_id='A2', order_date=''",)


def test_a_contract_without_an_end_date_says_how_to_export_an_open_ended_one(
    tmp_path: Path,
) -> None:
    """A user's month-to-month contracts came with an empty end_date: "fill in end_date"
    did not say what to fill in."""
    contracts = "account_id,start_date,end_date\nA1,2024-01-01,\n"
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS, "contracts.csv": contracts}))
    assert (issue.table, issue.column) == ("contracts", "end_date")
    assert "month-to-month" in issue.remedy and "end of its current term" in issue.remedy


def test_contracts_that_end_before_they_start_are_an_error(tmp_path: Path) -> None:
    contracts = (
        "account_id,start_date,end_date\nA1,2024-01-01,2024-12-31\nA2,2024-06-30,2024-01-01\n"
    )
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS, "contracts.csv": contracts}))
    assert (issue.table, issue.column) == ("contracts", "end_date")
    assert issue.examples == (
        "row 3: account_id='A2', start_date='2024-06-30', end_date='2024-01-01'",
    )
    assert "swapped" in issue.remedy


def test_survey_scores_outside_0_to_10_are_an_error_asking_to_rescale(tmp_path: Path) -> None:
    surveys = (
        "account_id,date,score\nA1,2024-01-10,8\nA2,2024-01-11,85\nA1,2024-02-10,9.5\n"
        "A2,2024-02-11,-3\nA1,2024-03-10,10\nA2,2024-03-11,0\n"
    )
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS, "surveys.csv": surveys}))
    assert (issue.table, issue.column, issue.n_rows) == ("surveys", "score", 2)
    assert "outside the 0-10 scale (found -3 to 85)" in issue.problem
    assert issue.examples == (
        "row 3: account_id='A2', date='2024-01-11', score='85'",
        "row 5: account_id='A2', date='2024-02-11', score='-3'",
    )
    assert "rescale them to 0-10 (e.g. divide a 0-100 score by 10)" in issue.remedy


def test_survey_kinds_that_look_like_a_1_to_5_scale_are_warned_about(tmp_path: Path) -> None:
    answers = [(d, 1 + d % 5, "renewal") for d in range(1, 26)]  # 25 answers on 1-5
    answers += [(d, d % 6, "nps") for d in range(1, 26)]  # low, but 0-10 NPS could be
    answers += [(d, 3, "nps") for d in range(1, 3)] + [(d, 2, None) for d in range(1, 10)]
    surveys = "account_id,date,score,kind\n" + "".join(
        f"A1,2024-01-{d:02d},{v},{k or ''}\n" for d, v, k in answers
    )
    files = {"orders.csv": ORDERS, "surveys.csv": surveys}
    history = load_history(_folder(tmp_path, files), DataConfig())
    (warning,) = [w for w in history.warnings if "1-5 scale" in w]
    assert "kind=renewal: 25 answers, all between 1 and 5" in warning
    assert "kind=nps" in warning  # 27 answers, none above 5
    assert "kind=(none)" not in warning  # 9 answers: too few to say
    assert "(score - 1) * 2.5" in warning
    assert history.surveys is not None and len(history.surveys) == len(answers)  # kept


def test_survey_scores_on_the_0_to_10_scale_pass_as_given(tmp_path: Path) -> None:
    surveys = "account_id,date,score\nA1,2024-01-10,0\nA2,2024-01-11,10\nA1,2024-02-10,7.5\n"
    files = {"orders.csv": ORDERS, "surveys.csv": surveys}
    history = load_history(_folder(tmp_path, files), DataConfig())
    assert history.surveys is not None and history.warnings == ()
    assert history.surveys["score"].tolist() == [0.0, 7.5, 10.0]


def test_unknown_ticket_severities_are_an_error_listing_the_values(tmp_path: Path) -> None:
    tickets = (
        "account_id,opened_at,severity\nA1,2024-01-01,High\nA1,2024-01-02,sehr hoch\n"
        "A2,2024-01-03, CRITICAL \nA2,2024-01-04,\nA2,2024-01-05,S1\nA1,2024-01-06,sehr hoch\n"
        "A1,2024-01-07,n/a\n"
    )
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS, "tickets.csv": tickets}))
    assert (issue.table, issue.column, issue.n_rows) == ("tickets", "severity", 3)
    assert issue.problem == "unknown severities: 'sehr hoch' (2 rows), 'S1' (1 rows)"
    assert issue.examples == (
        "row 3: account_id='A1', opened_at='2024-01-02', severity='sehr hoch'",
        "row 6: account_id='A2', opened_at='2024-01-05', severity='S1'",
        "row 7: account_id='A1', opened_at='2024-01-06', severity='sehr hoch'",
    )
    assert "low, medium, high or critical" in issue.remedy
    assert "data.severity_synonyms" in issue.remedy
    assert "leave the cell empty" in issue.remedy
    one = tickets.replace("sehr hoch", "Dringlich").replace("S1", "Dringlich")
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS, "tickets.csv": one}))
    assert issue.render().startswith(
        "table 'tickets', column 'severity': unknown severities: 'Dringlich' (3 rows)."
    )  # one value: its count once, not '(3 rows) (3 rows)'


def test_known_severities_in_any_case_and_blank_ones_pass(tmp_path: Path) -> None:
    tickets = (
        "account_id,opened_at,severity\nA1,2024-01-01,High\nA1,2024-01-02, low\n"
        "A2,2024-01-03,CRITICAL\nA2,2024-01-04,\nA2,2024-01-05,Medium\nA1,2024-01-06,N/A\n"
    )
    files = {"orders.csv": ORDERS, "tickets.csv": tickets}
    history = load_history(_folder(tmp_path, files), DataConfig())
    assert history.tickets is not None and history.warnings == ()
    assert len(history.tickets) == 6


def test_common_crm_severity_words_are_read_and_the_list_is_configurable(tmp_path: Path) -> None:
    """Seen: a CRM's ticket priority 'Urgent' refused as an unknown severity (196 rows)."""
    words = ["Urgent", "BLOCKER", "Highest", "p1", "P2", "Major", "Normal", "minor", "High"]
    tickets = "account_id,opened_at,severity\n" + "".join(
        f"A1,2024-01-{day:02d},{word}\n" for day, word in enumerate(words, start=1)
    )
    files = {"orders.csv": ORDERS, "tickets.csv": tickets}
    history = load_history(_folder(tmp_path, files), DataConfig())
    assert history.tickets is not None and history.warnings == ()
    assert history.tickets["severity"].tolist() == [
        *["critical"] * 4,
        "high",
        "high",
        "medium",
        "low",
        "High",
    ]
    own = DataConfig(severity_synonyms={" Urgent ": "HIGH", "blocker": "critical"})
    assert own.severity_synonyms == {"urgent": "high", "blocker": "critical"}
    issue = _only(_errors(tmp_path, files, own))  # a list of one's own replaces the default
    assert issue.problem.startswith("unknown severities: 'Highest' (1 rows), 'p1' (1 rows)")
    with pytest.raises(ValueError, match="not severities"):
        DataConfig(severity_synonyms={"urgent": "very high"})


def test_boolean_columns_read_yes_no_words_and_reject_others(tmp_path: Path) -> None:
    tickets = (
        "account_id,opened_at,is_complaint\nA1,2024-01-01,Yes\nA1,2024-01-02,n\n"
        "A2,2024-01-03,\nA2,2024-01-04,TRUE\n"
    )
    history = load_history(
        _folder(tmp_path, {"orders.csv": ORDERS, "tickets.csv": tickets}), DataConfig()
    )
    assert history.tickets is not None
    flags = history.tickets["is_complaint"]
    assert flags.isna().tolist() == [False, False, True, False]
    assert flags.fillna(False).tolist() == [True, False, False, True]
    bad = tickets + "A2,2024-01-05,perhaps\n"
    issue = _only(_errors(tmp_path, {"tickets.csv": bad}))
    assert (issue.table, issue.column) == ("tickets", "is_complaint")
    assert issue.examples == ("row 6: account_id='A2', is_complaint='perhaps'",)
    assert "yes/no" in issue.remedy


@pytest.mark.parametrize(
    ("yes", "no"),
    [("ja", "nein"), ("WAHR", "Falsch"), ("Oui", "NON"), ("vrai", "faux"), ("si", "no"),
     ("Sí", "No"), ("J", "N")],
)  # fmt: skip
def test_boolean_columns_read_german_french_and_spanish_yes_no_words(
    tmp_path: Path, yes: str, no: str
) -> None:
    tickets = f"account_id,opened_at,is_complaint\nA1,2024-01-01,{yes}\nA1,2024-01-02, {no} \n"
    contracts = f"account_id,start_date,end_date,renewed\nA1,2024-01-01,2024-12-31,{no}\n"
    files = {"orders.csv": ORDERS, "tickets.csv": tickets, "contracts.csv": contracts}
    history = load_history(_folder(tmp_path, files), DataConfig())
    assert history.tickets is not None and history.contracts is not None
    assert history.tickets["is_complaint"].tolist() == [True, False]
    assert history.contracts["renewed"].tolist() == [False]


def test_two_files_for_one_table_is_an_error_asking_to_keep_one(tmp_path: Path) -> None:
    _folder(tmp_path, {"orders.csv": ORDERS})
    pd.read_csv(tmp_path / "orders.csv").to_parquet(tmp_path / "orders.parquet")
    issue = _only(_errors(tmp_path, {}))
    assert issue.table == "orders"
    assert "'orders.csv' and 'orders.parquet'" in issue.problem
    assert "keep one of them" in issue.remedy


def test_undecodable_text_asks_to_set_the_encoding(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_bytes(
        "account_id,order_date,amount\nMüller,2024-01-05,1\n".encode("latin-1")
    )
    issue = _only(_errors(tmp_path, {}))
    assert issue.table == "orders" and "is not valid utf-8 text" in issue.problem
    assert "data.read.encoding: latin-1" in issue.remedy


def test_an_unknown_encoding_name_is_reported(tmp_path: Path) -> None:
    cfg = DataConfig(read=ReadOptions(encoding="klingon"))
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS}, cfg))
    assert "'klingon' is not a known text encoding" in issue.problem


def test_a_malformed_file_points_to_delimiter_and_quotes(tmp_path: Path) -> None:
    text = 'account_id,order_date,amount\nA1,2024-01-05,"1\n'
    issue = _only(_errors(tmp_path, {"orders.csv": text}))
    assert "not a well-formed delimited file" in issue.problem
    assert "data.read.delimiter" in issue.remedy


def test_two_columns_landing_on_one_name_is_an_error(tmp_path: Path) -> None:
    text = "account_id,order_date,Amount,amount\nK1,2024-01-05,1,2\n"
    issue = _only(_errors(tmp_path, {"orders.csv": text}))
    assert (issue.table, issue.column) == ("orders", "amount")
    assert "'Amount' and 'amount' both become 'amount'" in issue.problem
    assert "data.columns: {orders: {amount_2: amount}}" in issue.remedy


def test_a_remap_wins_over_a_source_column_of_the_contracts_name(tmp_path: Path) -> None:
    """The config says which column is meant: a CRM's own 'account_id' (an internal key)
    beside the mapped 'Kunde' is not read as the account id, and is no clash."""
    text = "Kunde,account_id,order_date,amount\nK1,X9,2024-01-05,1\n"
    cfg = DataConfig(columns={"orders": {"account_id": "Kunde"}})
    h = load_history(_folder(tmp_path, {"orders.csv": text}), cfg)
    assert h.orders["account_id"].tolist() == ["K1"]


def test_every_error_is_collected_before_raising(tmp_path: Path) -> None:
    orders = "account_id,order_date,amount\nA1,2024-02-30,1\nA2,2024-01-06,x\n"
    accounts = "account_id,name\nA1,Acme\nA1,Acme again\nA2,Borealis\n"
    contracts = "account_id,start_date,end_date\nA1,2024-05-01,2024-04-01\n"
    issues = _errors(
        tmp_path, {"orders.csv": orders, "accounts.csv": accounts, "contracts.csv": contracts}
    )
    assert [(i.table, i.column) for i in issues] == [
        ("orders", "order_date"),
        ("orders", "amount"),
        ("accounts", "account_id"),
        ("contracts", "end_date"),
    ]


def test_the_error_message_names_table_column_example_and_remedy(tmp_path: Path) -> None:
    text = "account_id,order_date,amount\nA1,2024-13-45,1\n"
    with pytest.raises(DataValidationError) as err:
        load_history(_folder(tmp_path, {"orders.csv": text}), DataConfig())
    message = str(err.value)
    assert message.startswith("The input data has 1 error: table 'orders', column 'order_date'")
    assert "Examples: row 2: account_id='A1', order_date='2024-13-45'." in message
    assert "Fix: write dates as YYYY-MM-DD" in message


def test_parquet_examples_number_rows_from_one(tmp_path: Path) -> None:
    pd.DataFrame(
        {"account_id": ["A1", "A2"], "order_date": ["2024-01-05", "later"], "amount": [1.0, 2.0]}
    ).to_parquet(tmp_path / "orders.parquet")
    issue = _only(_errors(tmp_path, {}))
    assert issue.examples == ("row 2: account_id='A2', order_date='later'",)


def test_no_orders_left_after_dropping_is_an_error(tmp_path: Path) -> None:
    issues = _errors(tmp_path, {"orders.csv": ORDERS}, as_of=pd.Timestamp("2023-01-01"))
    assert [i.problem for i in issues] == [
        "no orders remain after dropping the rows reported in the warnings"
    ]
    assert issues[0].examples == (
        "rows dated on or after the as-of date 2023-01-01 were dropped (3 rows)",
    )
    assert issues[0].remedy.startswith("pass a later --as-of")


def test_no_order_of_a_known_account_shows_ids_of_both_tables_and_the_zeros_lost(
    tmp_path: Path,
) -> None:
    orders = "account_id,order_date,amount\n00005,2024-01-05,1\n00017,2024-01-06,2\n"
    accounts = "account_id,name\n5,Acme\n17,Borealis\n"
    issue = _only(_errors(tmp_path, {"orders.csv": orders, "accounts.csv": accounts}))
    assert issue.problem == "no orders remain after dropping the rows reported in the warnings"
    assert issue.examples == (
        "rows whose account_id matches an account of the accounts table only without leading "
        "zeros (2 ids; e.g. '00005' is '5' there) were dropped: they are likely rows of those "
        "accounts, now lost (2 rows)",
        "account_ids in orders: '00005', '00017'",
        "account_ids in the accounts table: '5', '17'",
    )
    assert "differ in leading zeros ('00005' in orders is '5' in accounts" in issue.remedy
    assert "data.account_id_zeros: strip" in issue.remedy and "--as-of" not in issue.remedy
    # the setting it names reads them as one
    files = {"orders.csv": "account_id,order_date,amount\n00005,2024-01-05,1\n17,2024-01-06,2\n"}
    files["accounts.csv"] = "account_id,name\n5,Acme\n0017,Borealis\n"
    (tmp_path / "z").mkdir()
    got = load_history(_folder(tmp_path / "z", files), DataConfig(account_id_zeros="strip"))
    assert sorted(got.orders["account_id"]) == ["17", "5"] and got.warnings == ()


def test_rows_of_known_accounts_that_lost_their_zeros_are_warned_apart(tmp_path: Path) -> None:
    """A user's export lost the zeros from one month on: 41,036 of 85,140 order rows were
    dropped as accounts missing from the accounts table, "nothing to do if they are test
    or deleted accounts", exit 0."""
    orders = "account_id,order_date,amount\n00005,2024-01-05,1\n5,2024-02-05,2\nZ9,2024-02-06,3\n"
    accounts = "account_id,name\n00005,Acme\n"
    files = {"orders.csv": orders, "accounts.csv": accounts}
    history = load_history(_folder(tmp_path, files), DataConfig())
    padded = [w for w in history.warnings if "only without leading zeros" in w]
    unknown = [w for w in history.warnings if "test or deleted" in w]
    assert len(padded) == 1 and "(1 ids; e.g. '5' is '00005' there)" in padded[0]
    assert "data.account_id_zeros: strip" in padded[0] and "(1 rows)" in padded[0]
    assert len(unknown) == 1 and "Z9" in unknown[0] and "(1 rows)" in unknown[0]


def test_no_order_of_a_known_account_with_other_ids_asks_to_match_them(tmp_path: Path) -> None:
    orders = "account_id,order_date,amount\nC-1,2024-01-05,1\nC-2,2024-01-06,2\n"
    issue = _only(_errors(tmp_path, {"orders.csv": orders, "accounts.csv": ACCOUNTS}))
    assert issue.examples[1:] == (
        "account_ids in orders: 'C-1', 'C-2'",
        "account_ids in the accounts table: 'A1', 'A2'",
    )
    assert issue.remedy.startswith("make orders use the account_ids of the accounts table")
    assert "leading zeros" in issue.remedy and "--as-of" not in issue.remedy


# -- warnings: rows dropped safely -----------------------------------------------------------


def test_rows_of_unknown_accounts_are_dropped_with_a_warning(tmp_path: Path) -> None:
    orders = ORDERS + "Z9,2024-01-09,7\nZ9,2024-01-10,8\nY1,2024-01-11,9\n"
    usage = "account_id,date,count\nA1,2024-01-01,3\nZ9,2024-01-01,4\n"
    history = load_history(
        _folder(tmp_path, {"orders.csv": orders, "accounts.csv": ACCOUNTS, "usage.csv": usage}),
        DataConfig(),
    )
    assert set(history.orders["account_id"]) == {"A1", "A2"}
    assert history.usage is not None and history.usage["account_id"].tolist() == ["A1"]
    orders_warning, usage_warning = history.warnings
    assert orders_warning.startswith("table 'orders', column 'account_id': rows of accounts")
    assert "(2 accounts) (3 rows)" in orders_warning
    assert "row 5: account_id='Z9', order_date='2024-01-09'" in orders_warning
    assert "add these accounts to the accounts table" in orders_warning
    assert "table 'usage'" in usage_warning and "(1 rows)" in usage_warning


def test_accounts_derived_from_the_data_make_no_row_unknown(tmp_path: Path) -> None:
    usage = "account_id,date,count\nA1,2024-01-01,3\nZ9,2024-01-01,4\n"
    history = load_history(
        _folder(tmp_path, {"orders.csv": ORDERS, "usage.csv": usage}), DataConfig()
    )
    assert history.warnings == ()
    assert history.accounts["account_id"].tolist() == ["A1", "A2", "Z9"]
    assert pd.isna(history.accounts["created_at"].iloc[2])  # Z9 never ordered


def test_rows_on_or_after_the_as_of_are_dropped_with_a_warning(tmp_path: Path) -> None:
    usage = "account_id,date,count\nA1,2024-01-31,3\nA1,2024-02-01,4\n"
    contracts = (
        "account_id,start_date,end_date\nA1,2024-01-01,2024-12-31\nA2,2024-03-01,2025-02-28\n"
    )
    files = {"orders.csv": ORDERS, "usage.csv": usage, "contracts.csv": contracts}
    history = load_history(_folder(tmp_path, files), DataConfig(), pd.Timestamp("2024-02-01"))
    assert history.orders["order_date"].max() == pd.Timestamp("2024-01-06")
    assert history.usage is not None and len(history.usage) == 1
    # a running contract keeps its end date after the as-of
    assert history.contracts is not None
    assert history.contracts["end_date"].tolist() == [pd.Timestamp("2024-12-31")]
    assert len(history.warnings) == 3
    orders_warning = history.warnings[0]
    assert orders_warning.startswith("table 'orders', column 'order_date': rows dated on or after")
    assert "2024-02-01 were dropped (1 rows)" in orders_warning
    assert "row 4: account_id='A1', order_date='2024-02-05'" in orders_warning
    assert "data.future_rows: error" in orders_warning


def test_a_contract_signed_before_the_as_of_is_kept_though_it_starts_after_it(
    tmp_path: Path,
) -> None:
    """Renewals signed ahead were dropped as future rows: the warning now says how to keep
    them (a signed_date column), and with one they are kept."""
    as_of = pd.Timestamp("2024-02-01")
    contracts = (
        "account_id,start_date,end_date\nA1,2023-02-01,2024-02-29\nA1,2024-03-01,2025-02-28\n"
    )
    files = {"orders.csv": ORDERS, "contracts.csv": contracts}
    history = load_history(_folder(tmp_path, files), DataConfig(), as_of)
    assert history.contracts is not None and len(history.contracts) == 1
    (said,) = [w for w in history.warnings if w.startswith("table 'contracts'")]
    assert "give its signing date in a signed_date column" in said
    signed = (
        "account_id,start_date,end_date,signed_date\nA1,2023-02-01,2024-02-29,\n"
        "A1,2024-03-01,2025-02-28,2024-01-15\nA2,2024-03-01,2025-02-28,2024-02-10\n"
    )
    later = _folder(_mkdir(tmp_path / "signed"), {**files, "contracts.csv": signed})
    history = load_history(later, DataConfig(), as_of)
    assert history.contracts is not None
    assert history.contracts["start_date"].tolist() == [
        pd.Timestamp("2023-02-01"),
        pd.Timestamp("2024-03-01"),  # signed 2024-01-15: known
    ]  # A2's, signed after the as-of, is dropped
    (said,) = [w for w in history.warnings if w.startswith("table 'contracts'")]
    assert "(1 rows)" in said and "signed_date='2024-02-10'" in said
    assert "count from their signed_date" in said


def test_future_rows_are_an_error_when_configured(tmp_path: Path) -> None:
    cfg = DataConfig(future_rows="error")
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS}, cfg, pd.Timestamp("2024-02-01")))
    assert (issue.table, issue.column, issue.n_rows) == ("orders", "order_date", 1)
    assert "pass a later --as-of" in issue.remedy and "data.future_rows: drop" in issue.remedy


def test_without_an_as_of_no_row_is_in_the_future(tmp_path: Path) -> None:
    orders = ORDERS + "A1,2099-01-01,1\n"
    history = load_history(
        _folder(tmp_path, {"orders.csv": orders}), DataConfig(future_rows="error")
    )
    assert len(history.orders) == 4 and history.warnings == ()


def test_exact_duplicate_rows_are_dropped_with_a_warning(tmp_path: Path) -> None:
    orders = ORDERS + "A1,2024-01-05,10.0\nA1,2024-01-05,11\n"  # 10.0 repeats 10
    history = load_history(_folder(tmp_path, {"orders.csv": orders}), DataConfig())
    assert len(history.orders) == 4
    warning = history.warnings[0]
    assert (
        "table 'orders': rows that exactly repeat an earlier row were dropped (1 rows)" in warning
    )
    assert "row 5: account_id='A1', order_date='2024-01-05'" in warning
    assert "own order_id" in warning


def test_rows_that_differ_only_in_time_of_day_are_not_dropped_as_repeats(
    tmp_path: Path,
) -> None:
    """Two equal order lines at 09:15 and 16:40 are two orders that day: both are kept
    (revenue 20, not 10); only the line repeating 09:15 exactly is a repeat."""
    orders = (
        "account_id,order_date,amount\nA1,2024-01-05 09:15,10\nA1,2024-01-05 16:40,10\n"
        "A1,2024-01-05 09:15:00,10\nA2,2024-01-06,20\n"
    )
    history = load_history(_folder(tmp_path, {"orders.csv": orders}), DataConfig())
    assert history.orders["amount"].tolist() == [10.0, 10.0, 20.0]
    assert history.orders["order_date"].tolist() == [pd.Timestamp("2024-01-05")] * 2 + [
        pd.Timestamp("2024-01-06")
    ]
    warning = _only_warning(history.warnings)
    assert "rows that exactly repeat an earlier row were dropped (1 rows)" in warning
    assert "row 4: account_id='A1', order_date='2024-01-05 09:15:00'" in warning


def test_typed_timestamps_that_differ_only_in_time_of_day_are_not_repeats() -> None:
    orders = pd.DataFrame(
        {
            "account_id": ["A1", "A1", "A1"],
            "order_date": pd.to_datetime(
                ["2024-01-05 09:15", "2024-01-05 16:40", "2024-01-05 16:40"]
            ),
            "amount": [10.0, 10.0, 10.0],
        }
    )
    history, issues = validate_tables({"orders": orders}, DataConfig(), None)
    assert len(history.orders) == 2
    repeats = [i for i in issues if i.level == "warning"]
    assert [i.n_rows for i in repeats] == [1] and "exactly repeat" in repeats[0].problem


def test_usage_rows_with_a_negative_count_are_dropped_with_a_warning(tmp_path: Path) -> None:
    usage = "account_id,date,count\nA1,2024-01-01,3\nA1,2024-01-02,-40\nA2,2024-01-02,0\n"
    history = load_history(
        _folder(tmp_path, {"orders.csv": ORDERS, "usage.csv": usage}), DataConfig()
    )
    assert history.usage is not None and history.usage["count"].tolist() == [3.0, 0.0]
    warning = _only_warning(history.warnings)
    assert warning.startswith(
        "table 'usage', column 'count': usage rows with a negative count were dropped (1 rows)"
    )
    assert "row 3: account_id='A1', date='2024-01-02', count='-40'" in warning
    assert "cannot be negative" in warning


def test_tickets_resolved_before_they_were_opened_are_kept_with_a_warning(
    tmp_path: Path,
) -> None:
    tickets = (
        "account_id,opened_at,resolved_at\nA1,2024-01-05,2024-01-07\nA2,2024-01-05,2020-01-01\n"
        "A2,2024-01-06,\n"
    )
    history = load_history(
        _folder(tmp_path, {"orders.csv": ORDERS, "tickets.csv": tickets}), DataConfig()
    )
    assert history.tickets is not None and len(history.tickets) == 3
    warning = _only_warning(history.warnings)
    assert warning.startswith(
        "table 'tickets', column 'resolved_at': tickets resolved before they were opened"
    )
    assert "kept as given" in warning and "(1 rows)" in warning
    assert "row 3: account_id='A2', opened_at='2024-01-05', resolved_at='2020-01-01'" in warning
    assert "swapped" in warning


def test_contracts_with_a_negative_value_are_kept_with_a_warning(tmp_path: Path) -> None:
    contracts = (
        "account_id,start_date,end_date,value\nA1,2024-01-01,2024-12-31,1000\n"
        "A2,2024-01-01,2024-12-31,-50000\n"
    )
    history = load_history(
        _folder(tmp_path, {"orders.csv": ORDERS, "contracts.csv": contracts}), DataConfig()
    )
    assert history.contracts is not None
    assert history.contracts["value"].tolist() == [1000.0, -50000.0]
    warning = _only_warning(history.warnings)
    assert warning.startswith("table 'contracts', column 'value': contracts with a negative")
    assert "kept as given" in warning and "(1 rows)" in warning
    assert "row 3: account_id='A2', start_date='2024-01-01', value='-50000'" in warning


def test_unknown_table_like_files_are_ignored_silently(tmp_path: Path) -> None:
    files = {"orders.csv": ORDERS, "invoices.csv": "garbage\n\x00", "notes.md": "# hi\n"}
    history = load_history(_folder(tmp_path, files), DataConfig())
    assert history.warnings == () and len(history.orders) == 3


def test_ambiguous_day_month_dates_warn_when_dayfirst_is_not_set(tmp_path: Path) -> None:
    text = "account_id,order_date,amount\nA1,03.01.2024,1\nA1,04.02.2024,2\nA1,05.05.2024,3\n"
    history = load_history(_folder(tmp_path, {"orders.csv": text}), DataConfig())
    assert history.orders["order_date"].dt.month.tolist() == [3, 4, 5]  # month-first
    warning = _only_warning(history.warnings)
    assert "column 'order_date': dates that read differently day-first" in warning
    assert "(2 rows)" in warning  # 05.05.2024 reads the same either way
    assert "row 2: account_id='A1', order_date='03.01.2024'" in warning
    assert "data.read.dayfirst: true" in warning


def test_day_first_is_used_when_the_data_prove_it(tmp_path: Path) -> None:
    text = "account_id,order_date,amount\nA1,03.01.2024,1\nA1,20.01.2024,2\n"
    history = load_history(_folder(tmp_path, {"orders.csv": text}), DataConfig())
    assert history.orders["order_date"].tolist() == [
        pd.Timestamp("2024-01-03"),
        pd.Timestamp("2024-01-20"),
    ]
    assert history.warnings == ()


def _only_warning(warnings: tuple[str, ...]) -> str:
    assert len(warnings) == 1, warnings
    return warnings[0]


# -- the pure API -----------------------------------------------------------------------------


def test_validate_tables_types_raw_frames_without_files() -> None:
    raw = {
        "orders": pd.DataFrame(
            {
                "account_id": [" 007 ", "008"],
                "order_date": ["2024-01-05 13:45", "2024-01-06"],
                "amount": ["1", "2.5"],
            }
        )
    }
    history, issues = validate_tables(raw, DataConfig(), None)
    assert [i.level for i in issues] == ["info"]  # accounts derived
    assert history.orders["account_id"].tolist() == ["007", "008"]
    assert history.orders["order_date"].tolist() == [
        pd.Timestamp("2024-01-05"),
        pd.Timestamp("2024-01-06"),
    ]
    assert history.orders["amount"].tolist() == [1.0, 2.5]
    _, issues = validate_tables({}, DataConfig(), None)
    assert issues[0].table == "orders" and "found nothing" in issues[0].problem


_TOKEN_LIKE = st.sampled_from(["", "na", "NA", "n/a", "N/A", "#N/A", "nan", "NaN", "NaT", "null"])
_TEXT = st.one_of(
    _TOKEN_LIKE,
    st.text(alphabet="nNaAtTuUlLoOeE/#İKk x1é", max_size=6),
    st.none(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_TEXT, max_size=30))
def test_missing_markers_are_found_in_any_case_whatever_their_neighbours(
    values: list[str | None],
) -> None:
    """The length-filtered lookup equals lower-casing and looking up every value."""
    text = pd.Series(values, dtype="str")
    expected = [v is None or v.lower() in MISSING_TOKENS for v in values]
    assert is_missing(text).tolist() == expected


@pytest.mark.parametrize("padded", [False, True])
def test_typed_sources_keep_ids_and_dates_as_given_or_stripped_and_normalized(
    padded: bool,
) -> None:
    """Ids with surrounding spaces are stripped (all of them, not only the padded ones),
    clean ids are kept as they are; timestamps with a time of day become midnight, dates
    already at midnight stay; either way the typed values are what the contract says."""
    ids = [" A1", "A2 ", "A1"] if padded else ["A1", "A2", "A1"]
    times = ["2024-01-05 13:30", "2024-01-06", "2024-02-05 00:00:01"] if padded else None
    orders = pd.DataFrame(
        {
            "account_id": pd.Series(ids, dtype="str"),
            "order_date": pd.to_datetime(
                times or ["2024-01-05", "2024-01-06", "2024-02-05"], format="ISO8601"
            ),
            "amount": [10.0, 20.0, 5.0],
        }
    )
    history, issues = validate_tables({"orders": orders}, DataConfig(), None)
    assert [i for i in issues if i.level == "error"] == []
    got = history.orders
    assert got["account_id"].tolist() == ["A1", "A1", "A2"]
    assert str(got["account_id"].dtype) == "str"
    assert got["order_date"].tolist() == [
        pd.Timestamp("2024-01-05"),
        pd.Timestamp("2024-02-05"),
        pd.Timestamp("2024-01-06"),
    ]
    assert str(got["order_date"].dtype) == "datetime64[us]"


@pytest.mark.parametrize(
    ("values", "kept"),
    [
        (["A1", None, "B 2"], True),
        (["A1", None, " B2"], False),
        (["A1\u00a0", "B2"], False),
        ([None, None], True),
    ],
)
def test_stripping_keeps_the_column_itself_when_no_value_changes(
    values: list[str | None], kept: bool
) -> None:
    text = pd.Series(values, dtype="str")
    out = stripped(text)
    assert (out is text) == kept
    assert out.fillna("<NA>").tolist() == text.str.strip().fillna("<NA>").tolist()


def test_ids_that_differ_only_in_leading_zeros_in_one_table_are_warned_about() -> None:
    """Seen: '00017' and '17' in one orders file (part of the export wrote the column as a
    number) were split into two accounts without a word."""
    orders = pd.DataFrame(
        {
            "account_id": ["00017", "17", "0042", "42", "042", "7", "0"],
            "order_date": pd.to_datetime(["2024-01-05"] * 7),
            "amount": [10.0] * 7,
        }
    )
    history, issues = validate_tables({"orders": orders}, DataConfig(), None)
    assert history.orders["account_id"].nunique() == 7  # kept apart: ids are text
    (twins,) = [i for i in issues if "leading zeros" in i.problem]
    assert twins.level == "warning" and (twins.table, twins.column) == ("orders", "account_id")
    assert "(2 groups)" in twins.problem
    assert list(twins.examples) == ["'00017' and '17'", "'0042' and '042' and '42'"]
    clean = orders.assign(account_id=["A17", "17", "B42", "42", "C42", "7", "0"])
    assert not [
        i
        for i in validate_tables({"orders": clean}, DataConfig(), None)[1]
        if "leading zeros" in i.problem
    ]


def test_errors_name_the_sources_own_table_and_column_where_the_config_maps_them(
    tmp_path: Path,
) -> None:
    """Seen: 'table 'orders', column 'account_id'' for a CRM whose export is sales_lines
    with a Kunde column: the user had to translate back through the config."""
    (tmp_path / "sales_lines.csv").write_text(
        "Kunde,Datum,Betrag\nK1,2024-01-05,10\nK2,05/13/24x,3\n"
    )
    cfg = DataConfig(
        tables={"orders": "sales_lines"},
        columns={"orders": {"account_id": "Kunde", "order_date": "Datum", "amount": "Betrag"}},
    )
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path, cfg)
    assert (
        "table 'orders' ('sales_lines' in your data), column 'order_date' ('Datum' in your "
        "data): values that cannot be read as dates"
    ) in str(err.value)
    plain = DataIssue("orders", "amount", "p", "r")
    assert plain.render().startswith("table 'orders', column 'amount': p")


def test_rows_with_every_cell_empty_are_skipped_with_a_warning_keeping_row_numbers(
    tmp_path: Path,
) -> None:
    """A spreadsheet's CSV ended in ';;;;' lines: three errors ("rows without an
    account_id", "... a order_date", "... a amount") for rows that hold nothing."""
    orders = "account_id;order_date;amount\nA1;2024-01-02;5\n;;\nA1;x;6\n ; ;\n;;\n"
    with pytest.raises(DataValidationError) as err:
        load_history(_folder(tmp_path, {"orders.csv": orders}), DataConfig())
    (bad,) = err.value.issues
    assert "row 4: account_id='A1', order_date='x'" in bad.render()  # the file's own line
    orders = orders.replace("A1;x;6", "A1;2024-01-03;6")
    history = load_history(_folder(tmp_path, {"orders.csv": orders}), DataConfig())
    assert history.orders["amount"].tolist() == [5.0, 6.0]
    (said,) = history.warnings
    assert said.startswith("table 'orders': rows with every cell empty were skipped")
    assert "(3 rows)" in said and "row 3:" in said and "row 6:" in said


def test_spreadsheet_serial_dates_and_decimal_ids_get_their_own_fix(tmp_path: Path) -> None:
    """A user's exports: order dates as '45274' (a spreadsheet's serial days) were told to
    set data.read.date_format, which cannot express them; account ids '1000.0' against
    orders' '1000' got the generic 'make orders use the account_ids' fix."""
    orders = "account_id,order_date,amount\n1000,45274,5\n1000,45299,6\n"
    with pytest.raises(DataValidationError) as err:
        load_history(_folder(tmp_path, {"orders.csv": orders}), DataConfig())
    assert "spreadsheet serial day numbers (45274 is 2023-12-14)" in str(err.value)
    orders = orders.replace("45274", "2023-12-14").replace("45299", "2024-01-08")
    accounts = "account_id,name\n1000.0,Acme\n"
    with pytest.raises(DataValidationError) as err:
        load_history(
            _folder(tmp_path, {"orders.csv": orders, "accounts.csv": accounts}), DataConfig()
        )
    assert "'1000' in orders is '1000.0' in accounts" in str(err.value)
    assert "export the id column as text" in str(err.value)


# -- owners -----------------------------------------------------------------------------------
def test_owner_names_differing_only_in_case_or_spacing_are_one_owner_with_a_warning(
    tmp_path: Path,
) -> None:
    """A user's accounts table had 'bernd vogt' on some rows and 'Bernd Vogt' on most: two
    owners, two reports, two digests to one address, and no word."""
    accounts = (
        "account_id,name,owner\nA1,Acme,Bernd Vogt\nA2,Beta,Bernd Vogt\nA3,Gamma,bernd  vogt\n"
        "A4,Delta,Alice\nA5,Eps,\n"
    )
    orders = "".join(f"A{i},2024-01-0{i},10\n" for i in range(1, 6))
    files = {"orders.csv": "account_id,order_date,amount\n" + orders, "accounts.csv": accounts}
    history = load_history(_folder(tmp_path, files), DataConfig())
    assert history.accounts["owner"].tolist()[:4] == ["Bernd Vogt"] * 3 + ["Alice"]
    assert pd.isna(history.accounts["owner"].iloc[4])
    (said,) = [w for w in history.warnings if "column 'owner'" in w]
    assert "'bernd  vogt' (1 accounts) as 'Bernd Vogt' (2)" in said and "(1 rows)" in said
    assert "row 4: account_id='A3', name='Gamma', owner='bernd  vogt'" in said


# -- account ids in another letter case ------------------------------------------------------
CASED_ORDERS = ORDERS + " a1,2024-03-05,7\n a2 ,2024-03-06,8\nZ9,2024-03-07,9\n"


def test_ids_matching_the_accounts_table_only_ignoring_case_are_a_warning_naming_the_setting(
    tmp_path: Path,
) -> None:
    """Seen: 2% of order rows had ' ka-0287' for the accounts table's 'KA-0287'; they were
    dropped as 'accounts missing from the accounts table ... nothing to do if they are test
    or deleted accounts', and the accounts' real last orders were lost."""
    history = load_history(
        _folder(tmp_path, {"orders.csv": CASED_ORDERS, "accounts.csv": ACCOUNTS}), DataConfig()
    )
    assert set(history.orders["account_id"]) == {"A1", "A2"}  # keep: still two ids apart
    cased, unknown = history.warnings  # the case warning first: it costs real rows
    assert "matches an account of the accounts table only when letter case is ignored" in cased
    assert "(2 ids; e.g. 'a1' is 'A1' there)" in cased and "(2 rows)" in cased
    assert "row 5: account_id=' a1', order_date='2024-03-05'" in cased
    assert "data.account_id_case: upper" in cased and "test or deleted" not in cased
    assert "(1 accounts) (1 rows)" in unknown and "Z9" in unknown  # a truly unknown one


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_a_table_whose_every_row_is_dropped_is_an_error_not_a_warning(tmp_path: Path) -> None:
    """A user's usage export with lower-case ids: every row was dropped with a warning,
    `validate` said 'valid' and 'usage 0 rows', exit 0, and every score went without usage."""
    usage = "account_id,date,count\na1,2024-01-01,3\na2,2024-01-08,4\n"
    files = {"orders.csv": ORDERS, "accounts.csv": ACCOUNTS, "usage.csv": usage}
    with pytest.raises(DataValidationError) as err:
        load_history(_folder(tmp_path, files), DataConfig())
    said = str(err.value)
    assert "table 'usage', column 'account_id'" in said
    assert "only when letter case is ignored" in said and "data.account_id_case: upper" in said
    assert "every row of the table" in said
    # unknown ids of every row, not a case mismatch: an error too
    other = {**files, "usage.csv": "account_id,date,count\nZ1,2024-01-01,3\n"}
    with pytest.raises(DataValidationError, match="every row of the table"):
        load_history(_folder(_mkdir(tmp_path / "b"), other), DataConfig())
    # some rows left: still a warning
    some = {**files, "usage.csv": usage + "A1,2024-01-15,5\n"}
    history = load_history(_folder(_mkdir(tmp_path / "c"), some), DataConfig())
    assert history.usage is not None and len(history.usage) == 1
    assert any("only when letter case is ignored" in w for w in history.warnings)


def test_account_id_case_upper_folds_the_ids_of_every_table_before_anything_else(
    tmp_path: Path,
) -> None:
    usage = "account_id,date,count\na1,2024-01-01,3\n"
    files = {"orders.csv": CASED_ORDERS, "accounts.csv": "account_id\na1\nA2\n", "usage.csv": usage}
    history = load_history(_folder(tmp_path, files), DataConfig(account_id_case="upper"))
    assert history.orders["account_id"].tolist() == ["A1", "A1", "A1", "A2", "A2"]
    assert history.accounts["account_id"].tolist() == ["A1", "A2"]
    assert history.usage is not None and history.usage["account_id"].tolist() == ["A1"]
    assert len(history.warnings) == 1 and "Z9" in history.warnings[0]  # Z9 is unknown
    lower = load_history(tmp_path, DataConfig(account_id_case="lower"))
    assert set(lower.orders["account_id"]) == {"a1", "a2"}


def test_without_accounts_table_ids_differing_only_in_case_are_warned_about(
    tmp_path: Path,
) -> None:
    """Seen: without an accounts table the lower-case spellings became 168 fake accounts."""
    tickets = "account_id,opened_at\nA1,2024-01-02\nz9,2024-01-03\n"
    files = {"orders.csv": CASED_ORDERS, "tickets.csv": tickets}
    history = load_history(_folder(tmp_path, files), DataConfig())
    twins, strays = history.warnings
    assert twins.startswith("table 'orders', column 'account_id': account_ids that differ")
    assert "(2 groups)" in twins and "'A1' and 'a1'; 'A2' and 'a2'" in twins
    assert "data.account_id_case: upper" in twins
    assert strays.startswith("table 'tickets'") and "account of orders only when" in strays
    assert "'z9' is 'Z9' there" in strays and "read as accounts of their own" in strays
    folded = load_history(tmp_path, DataConfig(account_id_case="upper"))
    assert folded.warnings == () and len(folded.accounts) == 3


def test_no_order_of_a_known_account_in_another_case_names_the_case_setting(
    tmp_path: Path,
) -> None:
    orders = "account_id,order_date,amount\na1,2024-01-05,1\na2,2024-01-06,2\n"
    issue = _only(_errors(tmp_path, {"orders.csv": orders, "accounts.csv": ACCOUNTS}))
    assert "('a1' in orders is 'A1' in accounts)" in issue.remedy
    assert "data.account_id_case: upper" in issue.remedy


def test_amounts_in_several_currencies_are_warned_about(tmp_path: Path) -> None:
    """Seen: orders and contracts with a Currency column (EUR/GBP/USD) summed as they were
    and labelled with report.currency, without a word."""
    orders = (
        "account_id,order_date,amount,Currency\nA1,2024-01-05,10,EUR\nA2,2024-01-06,20,gbp\n"
        "A1,2024-02-05,5, EUR\n"
    )
    contracts = "account_id,start_date,end_date,value,Währung\nA1,2024-01-01,2024-12-31,9,USD\n"
    history = load_history(
        _folder(tmp_path, {"orders.csv": orders, "contracts.csv": contracts}), DataConfig()
    )
    (warning,) = history.warnings  # one currency in contracts: nothing to say
    assert warning.startswith("table 'orders', column 'Currency': order amounts in 2 currencies")
    assert "'EUR' (2 rows), 'GBP' (1 rows)" in warning
    assert "report.currency is only the label" in warning and "convert order amounts" in warning
    one = orders.replace("gbp", "EUR").replace("Currency", "curr_code")
    assert load_history(_folder(tmp_path, {"orders.csv": one}), DataConfig()).warnings == ()
    names = ["Currency Code", "CURR", "ccy", "WAERS", "waehrung", "Devise", "amount", "Cursor"]
    from ka_ml.data.currency import currency_columns

    assert currency_columns("orders", names) == names[:6]
    assert currency_columns("usage", names) == []


def test_contracts_still_running_marked_renewed_are_said_to_be_unread(tmp_path: Path) -> None:
    """Read on a CRM export mapping 'Auto Renewal: Yes' to renewed: 64 accounts got
    'Contract ends in 1 day (raises risk)', and nothing said the column is not used."""
    contracts = (
        "account_id,start_date,end_date,renewed\n"
        "A1,2023-01-01,2023-12-31,yes\n"  # ended, followed by the next: as the models expect
        "A1,2024-01-01,2024-12-31,yes\n"  # still running at the newest order: auto-renewal?
        "A2,2024-01-01,2024-12-31,no\n"
    )
    h = load_history(
        _folder(tmp_path, {"orders.csv": ORDERS, "contracts.csv": contracts}), DataConfig()
    )
    (said,) = [w for w in h.warnings if "marked renewed" in w]
    assert (
        "1 contracts running at the newest order (2024-02-05) with no later term in the "
        "table are marked renewed"
    ) in said
    assert "account_id=A1, end_date=2024-12-31" in said and "auto-renewal term" in said
    ended = contracts.replace("2024-12-31,yes", "2024-01-31,yes")
    h = load_history(
        _folder(tmp_path, {"orders.csv": ORDERS, "contracts.csv": ended}), DataConfig()
    )
    assert not [w for w in h.warnings if "marked renewed" in w]
    # a user's signed next terms (starting next year) were counted as "still running", and
    # the terms they follow as unread: the renewal is on record, nothing to say
    signed = contracts + "A1,2025-01-01,2025-12-31,no\n"
    h = load_history(
        _folder(tmp_path, {"orders.csv": ORDERS, "contracts.csv": signed}), DataConfig()
    )
    assert not [w for w in h.warnings if "marked renewed" in w]


def test_the_owners_email_is_read_from_the_accounts_table(tmp_path: Path) -> None:
    accounts = "account_id,name,owner,KAM Email\nA1,Acme,Ben Müller,ben.mueller@corp.example\nA2,Borealis,,\n"
    cfg = DataConfig(columns={"accounts": {"owner_email": "KAM Email"}})
    h = load_history(_folder(tmp_path, {"orders.csv": ORDERS, "accounts.csv": accounts}), cfg)
    email = h.accounts.set_index("account_id")["owner_email"]
    assert email["A1"] == "ben.mueller@corp.example" and pd.isna(email["A2"])


def test_a_credit_note_larger_than_all_the_account_bought_is_warned_about(tmp_path: Path) -> None:
    """Seen in an operator's test: a -99,999,999 credit on an account with 135k of orders was
    accepted without a word; its revenue read -99,984,242 (tier C)."""
    orders = ORDERS + "A2,2024-03-01,-99999999\nA1,2024-03-02,-3\n"  # A1's return is fine
    h = load_history(
        _folder(tmp_path, {"orders.csv": orders, "accounts.csv": ACCOUNTS}), DataConfig()
    )
    (said,) = [w for w in h.warnings if "credit notes" in w]
    assert "1 account has credit notes (negative amounts) larger than everything bought" in said
    assert "account_id=A2, order_date=2024-03-01, amount=-99,999,999.00 (bought 20.00" in said
    assert "check the sign and scale" in said


def test_order_lines_posted_twice_and_order_ids_of_two_customers_are_warned_about(
    tmp_path: Path,
) -> None:
    """A distributor's ERP export: 100 order lines posted again a day later under the same
    document number, and 30 document numbers re-booked for another customer, passed without
    a word; the first inflated revenue, tiers and order values. The rows are kept."""
    orders = (
        "account_id,order_date,amount,order_id,product,quantity\n"
        "A1,2024-01-05,100,SO1,bolt,10\n"
        "A1,2024-01-05,40,SO1,nut,4\n"  # another line of the same order
        "A1,2024-01-06,100,SO1,bolt,10\n"  # the first line again, a day later
        "A1,2024-01-09,100,SO1,bolt,10\n"  # and again
        "A1,2024-01-07,40,SO1,nut,5\n"  # a later delivery of another quantity: fine
        "A1,2024-02-05,100,SO2,bolt,10\n"  # the same goods on a new order: a repeat purchase
        "A2,2024-03-01,-40,SO1,nut,4\n"  # SO1 credited on another customer
        "A2,2024-03-02,20,,bolt,2\n"  # no order id: nothing to compare
        "A2,2024-03-09,20,,bolt,2\n"
    )
    h = load_history(
        _folder(tmp_path, {"orders.csv": orders, "accounts.csv": ACCOUNTS}), DataConfig()
    )
    assert len(h.orders) == 9
    (twice,) = [w for w in h.warnings if "on a later day" in w]
    assert "2 order lines repeat a line of the same order on a later day" in twice
    assert (
        "account_id=A1, order_id=SO1, order_date=2024-01-06 (first 2024-01-05), amount=100.00; "
        "account_id=A1, order_id=SO1, order_date=2024-01-09 (first 2024-01-05)"
    ) in twice
    assert "remove the repeated postings" in twice
    (shared,) = [w for w in h.warnings if "more than one account" in w]
    assert "1 order id appears under more than one account" in shared and "(6 rows)" in shared
    assert "order_id=SO1, account_id=A1, order_date=2024-01-05" in shared
    assert "order_id=SO1, account_id=A2, order_date=2024-03-01" in shared
    clean = load_history(
        _folder(tmp_path, {"orders.csv": ORDERS, "accounts.csv": ACCOUNTS}), DataConfig()
    )
    assert not [w for w in clean.warnings if "order_id" in w]


def test_duplicate_accounts_are_shown_by_the_columns_they_disagree_on(tmp_path: Path) -> None:
    """A food wholesaler's accounts table held 010030 twice, under two owners: the error
    showed both rows' (identical) names, not the owner they disagreed on."""
    accounts = "account_id,name,owner,region\nA1,Acme,anja,Nord\nA2,Borealis,bernd,Sued\nA1,Acme,bernd,Nord\n"
    issue = _only(_errors(tmp_path, {"orders.csv": ORDERS, "accounts.csv": accounts}))
    assert issue.table == "accounts" and issue.column == "account_id"
    assert "(1 ids; their rows differ in owner)" in issue.problem
    assert issue.examples[0] == "row 2: account_id='A1', name='Acme', owner='anja'"
    assert issue.examples[1] == "row 4: account_id='A1', name='Acme', owner='bernd'"


def test_amounts_in_several_currencies_are_converted_by_the_configured_rates(
    tmp_path: Path,
) -> None:
    """A RevOps lead's Salesforce export held USD and CAD rows: summed as they were, a
    Canadian customer's revenue read 146,886 'USD' where it was 107,216, and its tier A.
    data.currency_rates converts each row by its currency (blank: the report's own)."""
    orders = (
        "account_id,order_date,amount,CurrencyIsoCode\nA1,2024-01-05,100,USD\n"
        "A2,2024-01-06,200, cad\nA1,2024-02-05,50,\n"
    )
    contracts = "account_id,start_date,end_date,value,Currency\nA2,2024-01-01,2024-12-31,1000,CAD\n"
    folder = _folder(tmp_path, {"orders.csv": orders, "contracts.csv": contracts})
    cfg = DataConfig(currency_rates={"usd": 1, "CAD": 0.73})
    history = load_history(folder, cfg)
    got = history.orders.set_index(["account_id", "order_date"])["amount"]
    assert got.to_dict() == {
        ("A1", pd.Timestamp("2024-01-05")): 100.0,
        ("A1", pd.Timestamp("2024-02-05")): 50.0,
        ("A2", pd.Timestamp("2024-01-06")): pytest.approx(146.0),
    }
    assert history.contracts["value"].tolist() == [pytest.approx(730.0)]
    assert history.warnings == ()  # converted: no mixed-currency warning
    contracts_note, orders_note = sorted(history.conversions)
    assert orders_note.startswith(
        "table 'orders', column 'CurrencyIsoCode': order amounts converted with "
        "data.currency_rates: 'CAD' (1 rows at 0.73), 'USD' (1 rows at 1); 1 blank rows taken "
        "as already in the report's currency"
    )
    assert "contract values converted" in contracts_note
    # a currency without a rate: an error naming its rows, nothing loaded
    with pytest.raises(DataValidationError) as err:
        load_history(folder, DataConfig(currency_rates={"USD": 1}))
    issue, in_contracts = sorted(err.value.issues, key=lambda i: i.table != "orders")
    assert (issue.table, issue.column, issue.n_rows) == ("orders", "CurrencyIsoCode", 1)
    assert issue.problem.endswith("has no rate for: 'CAD'")
    assert in_contracts.table == "contracts" and in_contracts.column == "Currency"
    assert "data.currency_rates" in issue.remedy and "{CAD: 1.17}" in issue.remedy
    assert issue.examples[0].startswith("row 3: account_id='A2'")
    # rates set, no currency column: read as they are, with a warning
    (tmp_path / "bare").mkdir()
    bare = _folder(
        tmp_path / "bare", {"orders.csv": "account_id,order_date,amount\nA1,2024-01-05,9\n"}
    )
    plain = load_history(bare, cfg)
    assert plain.orders["amount"].tolist() == [9.0]
    (warning,) = plain.warnings
    assert "data.currency_rates is set, but the table has no currency column" in warning


def test_currency_rates_are_checked_when_the_config_is_read() -> None:
    from pydantic import ValidationError

    assert DataConfig(currency_rates={" eur ": 1}).currency_rates == {"EUR": 1.0}
    for bad in ({"EUR": 0}, {"eur": 1, "EUR": 1}, {"USD": -1}):
        with pytest.raises(ValidationError):
            DataConfig(currency_rates=bad)


def _amount_days(jump_day: str, factor: float, seed: int = 0) -> pd.DataFrame:
    """A year of order lines (40 a day, log-normal amounts around 500) whose amounts are
    ``factor`` times larger from ``jump_day`` on."""
    import numpy as np

    rng = np.random.default_rng(seed)
    days = pd.date_range("2025-01-01", "2025-12-31", freq="D").repeat(40)
    amount = np.exp(rng.normal(np.log(500), 0.8, len(days)))
    amount = np.where(days >= pd.Timestamp(jump_day), amount * factor, amount)
    return pd.DataFrame({"order_date": days, "amount": amount})


@settings(max_examples=25, deadline=None)
@given(
    day=st.dates(
        min_value=pd.Timestamp("2025-03-01").date(), max_value=pd.Timestamp("2025-11-20").date()
    ),
    factor=st.sampled_from([100.0, 1000.0, 0.01, 0.001, 25.0]),
    seed=st.integers(0, 1000),
)
def test_a_change_of_units_in_the_order_amounts_is_found_on_its_day(
    day: object, factor: float, seed: int
) -> None:
    """A new ERP sending cents from one day on: found on that day, with both levels."""
    from ka_ml.data.history_checks import amount_scale_break, order_amount_days

    found = amount_scale_break(order_amount_days(_amount_days(str(day), factor, seed)))
    assert found is not None and found.day == pd.Timestamp(str(day))
    assert found.after / found.before == pytest.approx(factor, rel=0.25)


@settings(max_examples=25, deadline=None)
@given(factor=st.sampled_from([1.08, 0.9, 3.0, 0.2, 12.0]), seed=st.integers(0, 1000))
def test_price_moves_and_new_segments_are_not_a_change_of_units(factor: float, seed: int) -> None:
    from ka_ml.data.history_checks import amount_scale_break, order_amount_days

    assert amount_scale_break(order_amount_days(_amount_days("2025-07-14", factor, seed))) is None


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 70_000),  # days after 1900: some spans need more than 16 bits
            st.one_of(st.floats(-50, 1e9, allow_nan=False), st.just(0.0), st.just(12.5)),
        ),
        max_size=60,
    )
)
def test_order_amount_days_is_the_lower_median_of_each_days_positive_amounts(
    rows: list[tuple[int, float]],
) -> None:
    """The radix sort and partition give pandas' groupby lower median of the log amounts,
    day by day (ties, lone days, credits, zero amounts and spans past 16 bits included)."""
    import numpy as np

    from ka_ml.data.history_checks import order_amount_days

    orders = pd.DataFrame(
        {
            "order_date": pd.Timestamp("1900-01-01")
            + pd.to_timedelta([d for d, _ in rows], unit="D"),
            "amount": [a for _, a in rows],
        }
    )
    got = order_amount_days(orders)
    pos = orders[orders["amount"] > 0]
    by = pd.Series(np.log10(pos["amount"].to_numpy(float))).groupby(pos["order_date"].to_numpy())
    want = pd.DataFrame(
        {"rows": by.size(), "log_median": by.quantile(0.5, interpolation="lower")}
    ).reset_index(names="day")
    assert list(got.columns) == ["day", "rows", "log_median"]
    assert got["day"].tolist() == want["day"].tolist()
    assert got["rows"].tolist() == want["rows"].tolist()
    assert got["log_median"].tolist() == want["log_median"].tolist()


def test_validate_warns_of_order_amounts_in_cents_from_one_day_on(
    demo_dir: Path, tmp_path: Path
) -> None:
    """u31: order lines from 1 September in cents; validate said "valid" and 50 of 94 reds
    read "Spend in the last 30 days: 5,322,759 EUR". The loader names the day and the factor."""
    from fixtures import demo_in_cents

    data = demo_in_cents(demo_dir, tmp_path / "data", "2026-03-02")
    said = [w for w in load_history(str(data), DataConfig()).warnings if "change of units" in w]
    assert len(said) == 1
    assert said[0].startswith(
        "table 'orders', column 'amount': order amounts from 2026-03-02 on are about 100 "
        "times those before"
    )
    assert not any(
        "change of units" in w for w in load_history(str(demo_dir), DataConfig()).warnings
    )
