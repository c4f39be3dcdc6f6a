"""Reading data sources: formats, remaps, encodings, and identical Histories across sources."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ka_ml.config import DataConfig, ReadOptions
from ka_ml.data.history import History
from ka_ml.data.loader import load_history, read_raw_tables, resolve_source
from ka_ml.errors import DataValidationError, KaMlError

# -- small typed tables, written to every kind of source -----------------------------------


def _orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["00017", "00017", "00042", "00042", "00042", "B-7", "B-7", "00017"],
            "order_date": pd.to_datetime(
                [
                    "2024-01-05",
                    "2024-02-10",
                    "2024-01-20",
                    "2024-03-01",
                    "2024-03-01",
                    "2024-02-29",
                    "2024-04-02",
                    "2024-04-15",
                ]
            ),
            "amount": [120.5, 80.0, 1500.25, -200.0, 310.0, 99.99, 45.0, 60.0],
            "order_id": ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008"],
            "product": ["bolts", "nuts", "steel", "steel", "nuts", None, "bolts", "nuts"],
            "quantity": [10.0, 4.0, 1.0, -1.0, 12.0, 3.0, None, 2.0],
        }
    )


def _accounts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["00017", "00042", "B-7"],
            "name": ["Acme GmbH", "Borealis AG", "Corvid Ltd"],
            "industry": ["machinery", "chemicals", "machinery"],
            "region": ["DACH", "NA", "UK"],
            "created_at": pd.to_datetime(["2023-06-01", "2023-09-15", "NaT"]),
            "owner": ["kim", "lee", "kim"],
            "segment": ["key", "key", "growth"],
        }
    )


def _usage() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["00017", "00017", "00042", "B-7", "B-7", "00042"],
            "date": pd.to_datetime(
                ["2024-01-01", "2024-02-01", "2024-01-01", "2024-01-01", "2024-02-01", "2024-02-01"]
            ),
            "count": [31.0, 12.0, 250.0, 5.0, 0.0, 240.0],
            "event_type": ["login", "login", "api", "login", "login", "api"],
        }
    )


def _tickets() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["00017", "00042", "B-7", "00042"],
            "opened_at": pd.to_datetime(["2024-01-10", "2024-02-03", "2024-03-09", "2024-03-20"]),
            "severity": ["low", "critical", "medium", "high"],
            "is_complaint": pd.array([False, True, None, True], dtype="boolean"),
            "resolved_at": pd.to_datetime(["2024-01-12", "NaT", "2024-03-10", "2024-03-25"]),
        }
    )


def _surveys() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["00017", "00042", "B-7"],
            "date": pd.to_datetime(["2024-02-15", "2024-02-15", "2024-02-16"]),
            "score": [9.0, 3.0, 7.0],
            "kind": ["nps", "nps", "renewal_intent"],
        }
    )


def _contracts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["00017", "00042", "B-7"],
            "start_date": pd.to_datetime(["2023-07-01", "2023-10-01", "2024-01-01"]),
            # the renewed one ended before the newest order: a running one marked renewed
            # is warned about (an auto-renewal term?)
            "end_date": pd.to_datetime(["2024-03-31", "2024-09-30", "2024-12-31"]),
            "value": [50000.0, 120000.0, None],
            "renewed": pd.array([True, False, None], dtype="boolean"),
        }
    )


TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "orders": _orders,
    "accounts": _accounts,
    "usage": _usage,
    "tickets": _tickets,
    "surveys": _surveys,
    "contracts": _contracts,
}


def _write_folder(folder: Path, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in TABLES.items():
        df = make()
        if suffix == ".parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}{suffix}", index=False)
    return folder


def _write_duckdb(path: Path) -> Path:
    con = duckdb.connect(str(path))
    for name, make in TABLES.items():
        con.register("frame", make())
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        con.unregister("frame")
    con.close()
    return path


def _write_sqlite(path: Path) -> Path:
    con = sqlite3.connect(path)
    for name, make in TABLES.items():
        make().to_sql(name, con, index=False)
    con.close()
    return path


def _write_lake(folder: Path) -> Path:
    """Every table as a folder of Parquet parts, as a lake keeps them: orders in Hive-style
    ``year=/month=`` partitions, the others as Spark writes a table (``accounts.parquet/`` with
    ``part-*.parquet``, ``_SUCCESS`` and hidden ``.crc`` files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for name, make in TABLES.items():
        df = make()
        if name == "orders":
            dates = df["order_date"]
            parted = df.assign(year=dates.dt.year, month=dates.dt.month)
            table = pa.Table.from_pandas(parted, preserve_index=False)
            pq.write_to_dataset(table, folder / "orders", partition_cols=["year", "month"])
            continue
        part = folder / f"{name}.parquet"
        part.mkdir()
        half = len(df) // 2
        df.iloc[:half].to_parquet(part / "part-00000-a.snappy.parquet", index=False)
        df.iloc[half:].to_parquet(part / "part-00001-a.snappy.parquet", index=False)
        (part / "_SUCCESS").write_text("")
        (part / ".part-00000-a.snappy.parquet.crc").write_bytes(b"\x00crc")
    return folder


WRITERS: dict[str, Callable[[Path], str | Path]] = {
    "csv.gz": lambda tmp: _write_folder(tmp / "gz", ".csv.gz"),
    "parquet": lambda tmp: _write_folder(tmp / "pq", ".parquet"),
    "duckdb": lambda tmp: _write_duckdb(tmp / "data.duckdb"),
    "duckdb uri": lambda tmp: f"duckdb:///{_write_duckdb(tmp / 'data.ddb')}",
    "duckdb in a .db file": lambda tmp: _write_duckdb(tmp / "duck.db"),
    "sqlite": lambda tmp: _write_sqlite(tmp / "data.sqlite"),
    "sqlite uri": lambda tmp: f"sqlite:///{_write_sqlite(tmp / 'data.db')}",
}


def _assert_same_history(a: History, b: History) -> None:
    assert sorted(a.tables()) == sorted(b.tables())
    for name, frame in a.tables().items():
        pd.testing.assert_frame_equal(frame, b.tables()[name], obj=name)
    assert a.fingerprint() == b.fingerprint()


@pytest.fixture
def csv_history(tmp_path: Path) -> History:
    return load_history(_write_folder(tmp_path / "csv", ".csv"), DataConfig())


# -- identical Histories from every source -------------------------------------------------


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_every_source_kind_gives_the_same_history_as_csv(
    kind: str, tmp_path: Path, csv_history: History
) -> None:
    history = load_history(WRITERS[kind](tmp_path), DataConfig())
    _assert_same_history(csv_history, history)


def test_history_follows_the_type_conventions(csv_history: History) -> None:
    orders, tickets = csv_history.orders, csv_history.tickets
    assert tickets is not None
    assert orders["account_id"].dtype == "str"
    assert orders["order_date"].dtype == "datetime64[us]"
    assert orders["amount"].dtype == "float64"
    assert tickets["is_complaint"].dtype == "boolean"
    assert list(orders.columns) == [
        "account_id",
        "order_date",
        "amount",
        "order_id",
        "product",
        "quantity",
    ]
    assert isinstance(orders.index, pd.RangeIndex)
    # sorted by account, then date, then order id
    expected = ["0001", "0002", "0008", "0003", "0004", "0005", "0006", "0007"]
    assert orders["order_id"].tolist() == expected
    assert csv_history.warnings == ()


def test_extra_account_columns_are_kept_as_text(csv_history: History) -> None:
    accounts = csv_history.accounts
    assert list(accounts.columns)[-1] == "segment"
    assert accounts["segment"].tolist() == ["key", "key", "growth"]
    # "NA" is a region (North America), not a missing value, in a text column
    assert accounts["region"].tolist() == ["DACH", "NA", "UK"]


def test_leading_zero_ids_survive_csv_and_string_parquet(tmp_path: Path) -> None:
    ids = ["00017", "0042", "007"]
    frame = pd.DataFrame(
        {"account_id": ids, "order_date": ["2024-01-01"] * 3, "amount": [1.0, 2.0, 3.0]}
    )
    (tmp_path / "csv").mkdir()
    (tmp_path / "pq").mkdir()
    frame.to_csv(tmp_path / "csv" / "orders.csv", index=False)
    frame.to_parquet(tmp_path / "pq" / "orders.parquet", index=False)
    for folder in ("csv", "pq"):
        history = load_history(tmp_path / folder, DataConfig())
        assert sorted(history.orders["account_id"]) == sorted(ids)
        assert sorted(history.accounts["account_id"]) == sorted(ids)


def test_integer_ids_from_typed_sources_render_without_a_decimal_point(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "account_id": pd.array([17, 42, 42], dtype="Int64"),
            "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
            "amount": [1.0, 2.0, 3.0],
            "order_id": [1.0, 2.0, None],  # integers that became floats through a NaN
        }
    )
    frame.to_parquet(tmp_path / "orders.parquet")
    orders = load_history(tmp_path, DataConfig()).orders
    assert orders["account_id"].tolist() == ["17", "42", "42"]
    assert orders["order_id"].iloc[:2].tolist() == ["1", "2"]
    assert orders["order_id"].isna().iloc[2]


# -- remaps ---------------------------------------------------------------------------------


def test_raw_crm_export_columns_are_mapped_through_config(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "Kunde,Datum,Betrag,Region\nK-001,2024-01-05,100.5,Nord\nK-002,2024-01-06,20,Süd\n"
        "K-001,2024-02-05,30,Nord\n",
        encoding="utf-8",
    )
    cfg = DataConfig(
        columns={"orders": {"account_id": "Kunde", "order_date": "Datum", "amount": "Betrag"}}
    )
    orders = load_history(tmp_path, cfg).orders
    assert orders["account_id"].tolist() == ["K-001", "K-001", "K-002"]
    assert orders["amount"].tolist() == [100.5, 30.0, 20.0]
    assert orders["order_date"].dt.day.tolist() == [5, 5, 6]
    assert orders["Region"].tolist() == ["Nord", "Nord", "Süd"]


def test_column_names_match_case_insensitively_and_without_spaces(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        " Account_ID ,ORDER_DATE,Amount\nA1,2024-01-05,1\nA2,2024-01-06,2\n", encoding="utf-8"
    )
    orders = load_history(tmp_path, DataConfig()).orders
    assert orders["account_id"].tolist() == ["A1", "A2"]


def test_table_remap_reads_the_file_named_in_config(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text(
        "account_id,order_date,amount\nA1,2024-01-05,1\n", encoding="utf-8"
    )
    (tmp_path / "kunden.csv").write_text(
        "account_id,name\nA1,Acme\nA2,Borealis\n", encoding="utf-8"
    )
    cfg = DataConfig(tables={"orders": "sales", "accounts": "kunden"})
    history = load_history(tmp_path, cfg)
    assert history.orders["amount"].tolist() == [1.0]
    assert history.accounts["name"].tolist() == ["Acme", "Borealis"]


def test_read_raw_tables_keeps_values_as_text_under_canonical_names(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "Kunde;order_date;amount\n007;05.01.2024;1,5\n", encoding="utf-8"
    )
    raw = read_raw_tables(tmp_path, DataConfig(columns={"orders": {"account_id": "Kunde"}}))
    assert list(raw) == ["orders"]
    assert raw["orders"].to_dict("records") == [
        {"account_id": "007", "order_date": "05.01.2024", "amount": "1,5"}
    ]


# -- text formats ---------------------------------------------------------------------------


def test_semicolon_file_with_decimal_comma_parses_when_configured(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "account_id;order_date;amount;quantity\n"
        "A1;2024-01-05;1.234,56;2\n"
        "A1;2024-01-06;12,5;1,5\n"
        "A2;2024-01-07;-3,00;\n"
        "A2;2024-01-08;1.000.000;1\n",
        encoding="utf-8",
    )
    orders = load_history(tmp_path, DataConfig(read=ReadOptions(decimal=","))).orders
    assert orders["amount"].tolist() == [1234.56, 12.5, -3.0, 1_000_000.0]
    assert orders["quantity"].iloc[:2].tolist() == [2.0, 1.5]
    assert orders["quantity"].isna().iloc[2]


def test_thousands_separators_are_understood_with_a_decimal_point(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        'account_id,order_date,amount\nA1,2024-01-05,"1,234.50"\nA1,2024-01-06,€ 99\n'
        "A1,2024-01-07,1 000\n",
        encoding="utf-8",
    )
    orders = load_history(tmp_path, DataConfig()).orders
    assert orders["amount"].tolist() == [1234.5, 99.0, 1000.0]


def _amounts_file(tmp_path: Path, amounts: list[str], sep: str = ",") -> None:
    rows = "".join(
        f'A{i % 3}{sep}2024-01-{i % 28 + 1:02d}{sep}"{a}"\n' for i, a in enumerate(amounts)
    )
    (tmp_path / "orders.csv").write_text(f"account_id{sep}order_date{sep}amount\n{rows}")


@pytest.mark.parametrize(
    ("decimal", "sep", "grouped"),
    [(".", ",", ["1.266", "12.500", "€ 407.453", "3.001", "1.000-"]), (",", ";", ["1,266"] * 5)],
)
def test_whole_numbers_grouped_by_the_decimal_mark_are_refused_not_read_1000_times_small(
    tmp_path: Path, decimal: str, sep: str, grouped: list[str]
) -> None:
    """A user's German export of whole euros (1.266 beside 438) was read under the default
    decimal '.' as 1.266: 12-month revenue 8.0M instead of 29.7M, ABC tiers scrambled, exit
    0. Such a column is refused naming the setting that reads it (1.266 -> 1266); the
    escape for real three-decimal amounts reads it as written."""
    _amounts_file(tmp_path, [*grouped, "438", "97"], sep)
    read = ReadOptions(decimal=decimal, delimiter=sep)
    with pytest.raises(DataValidationError) as e:
        load_history(tmp_path, DataConfig(read=read))
    msg = str(e.value)
    assert "'orders', column 'amount'" in msg and "grouping thousands" in msg
    other = "," if decimal == "." else "."
    assert f"data.read.decimal: '{other}'" in msg and "grouping_check: false" in msg
    as_written = load_history(
        tmp_path, DataConfig(read=read.model_copy(update={"grouping_check": False}))
    )
    assert sorted(as_written.orders["amount"])[-1] < 1000
    if decimal == ".":  # the remedy reads them as the whole numbers they are
        fixed = load_history(tmp_path, DataConfig(read=ReadOptions(decimal=",", delimiter=sep)))
        assert sorted(fixed.orders["amount"].abs()) == [
            97.0,
            438.0,
            1000.0,
            1266.0,
            3001.0,
            12500.0,
            407453.0,
        ]


@pytest.mark.parametrize(
    "amounts",
    [
        ["12.50", "1.266", "3.001", "4.500", "8.125", "438"],  # one value with two decimals
        ["0.125", "1.266", "3.001", "4.500", "8.125", "438"],  # a leading 0 groups nothing
        ["1.266", "3.001", "4.500", "8.125", "9.750", "2.500"],  # no whole number beside them
        ["1.266", "3.001", "4.500", "8.125", "438", "97"],  # four values prove nothing
        ["1,266.00", "2,500", "438", "97", "12.5", "3.25"],  # thousands by ',' with a '.'
    ],
)
def test_decimals_are_not_taken_for_grouped_thousands(tmp_path: Path, amounts: list[str]) -> None:
    _amounts_file(tmp_path, amounts)
    got = load_history(tmp_path, DataConfig()).orders["amount"]
    assert len(got) == len(amounts)


@pytest.mark.parametrize(
    ("decimal", "text", "value"),
    [
        (",", "EUR 1.234,56", 1234.56),
        (",", "1.234,56 EUR", 1234.56),
        (",", "202,94-", -202.94),
        (".", "USD 99", 99.0),
        (".", "1,234.50-", -1234.5),
        (".", "GBP -12.5", -12.5),
    ],
)
def test_amounts_with_an_iso_currency_code_or_a_trailing_minus_are_read(
    tmp_path: Path, decimal: str, text: str, value: float
) -> None:
    """Read on a CRM export: 'EUR 1.234,56' and SAP's '202,94-' were refused as 'not
    numbers' while '€ 1.234,56' was accepted."""
    sep = ";" if decimal == "," else ","
    (tmp_path / "orders.csv").write_text(
        f'account_id{sep}order_date{sep}amount\nA1{sep}2024-01-05{sep}"{text}"\n', encoding="utf-8"
    )
    got = load_history(tmp_path, DataConfig(read=ReadOptions(decimal=decimal, delimiter=sep)))
    assert got.orders["amount"].tolist() == [value]


def test_tab_separated_txt_file_is_sniffed(tmp_path: Path) -> None:
    (tmp_path / "orders.txt").write_text(
        "account_id\torder_date\tamount\nA1\t2024-01-05\t7\n", encoding="utf-8"
    )
    assert load_history(tmp_path, DataConfig()).orders["amount"].tolist() == [7.0]


def test_latin1_file_reads_once_the_encoding_is_configured(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "account_id,order_date,amount\nA1,2024-01-05,1\n", encoding="utf-8"
    )
    (tmp_path / "accounts.csv").write_bytes(
        "account_id;name\nA1;Müller & Söhne\n".encode("latin-1")
    )
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path, DataConfig())
    assert "table 'accounts'" in str(err.value)
    assert "data.read.encoding" in str(err.value)
    history = load_history(tmp_path, DataConfig(read=ReadOptions(encoding="latin-1")))
    assert history.accounts["name"].tolist() == ["Müller & Söhne"]


def test_utf8_byte_order_mark_is_stripped_from_the_first_column(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_bytes(
        "\ufeffaccount_id,order_date,amount\nA1,2024-01-05,1\n".encode()
    )
    history = load_history(tmp_path, DataConfig())
    assert history.orders.columns[0] == "account_id"
    # also when the configured encoding is not utf-8-sig
    raw = read_raw_tables(tmp_path, DataConfig(read=ReadOptions(encoding="latin-1")))
    assert raw["orders"].columns[0] == "account_id"


def test_timezone_aware_timestamps_become_utc_dates(tmp_path: Path) -> None:
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "orders.csv").write_text(
        "account_id,order_date,amount\n"
        "A1,2024-03-01T23:30:00+01:00,1\n"  # 22:30 UTC: same day
        "A1,2024-06-02T00:30:00+02:00,2\n"  # 22:30 UTC the day before (another offset)
        "A1,2024-07-01T10:00:00Z,3\n",
        encoding="utf-8",
    )
    csv = load_history(tmp_path / "csv", DataConfig()).orders
    assert csv["order_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-03-01",
        "2024-06-01",
        "2024-07-01",
    ]
    (tmp_path / "pq").mkdir()
    stamps = pd.to_datetime(["2024-03-01 23:30", "2024-06-02 00:30", "2024-07-01 12:00"])
    pd.DataFrame(
        {
            "account_id": ["A1"] * 3,
            "order_date": stamps.tz_localize("Europe/Berlin"),
            "amount": [1.0, 2.0, 3.0],
        }
    ).to_parquet(tmp_path / "pq" / "orders.parquet")
    pq = load_history(tmp_path / "pq", DataConfig()).orders
    pd.testing.assert_frame_equal(csv, pq)


def test_date_format_and_dayfirst_settings_are_honoured(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "account_id,order_date,amount\nA1,01.03.2024,1\nA1,13.03.2024,2\n", encoding="utf-8"
    )
    for read in (ReadOptions(date_format="%d.%m.%Y"), ReadOptions(dayfirst=True)):
        history = load_history(tmp_path, DataConfig(read=read))
        assert history.orders["order_date"].tolist() == [
            pd.Timestamp("2024-03-01"),
            pd.Timestamp("2024-03-13"),
        ]
        assert history.warnings == ()


def test_a_time_of_day_after_the_configured_date_format_is_read_and_dropped(
    tmp_path: Path,
) -> None:
    """Dates are dates: '25.09.2023 20:06:17' under date_format '%d.%m.%Y' is 25 September;
    an offset converts to UTC first, as for ISO values (29.09. 01:30+02:00 is the 28th)."""
    (tmp_path / "orders.csv").write_text(
        "account_id,order_date,amount\nA1,25.09.2023 20:06:17,1\nA1,26.09.2023T08:15,2\n"
        "A1,27.09.2023 23:30:00.250,3\nA1,28.09.2023,4\nA1,29.09.2023 01:30+02:00,5\n",
        encoding="utf-8",
    )
    history = load_history(tmp_path, DataConfig(read=ReadOptions(date_format="%d.%m.%Y")))
    days = ["2023-09-25", "2023-09-26", "2023-09-27", "2023-09-28", "2023-09-28"]
    assert history.orders["order_date"].tolist() == [pd.Timestamp(d) for d in days]
    assert history.warnings == ()


def test_dates_off_the_configured_format_get_a_fix_that_is_not_the_setting_in_place(
    tmp_path: Path,
) -> None:
    (tmp_path / "orders.csv").write_text(
        "account_id,order_date,amount\nA1,25.09.2023 20:06,1\nA1,09/26/2023,2\n",
        encoding="utf-8",
    )
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path, DataConfig(read=ReadOptions(date_format="%d.%m.%Y")))
    (issue,) = err.value.issues
    assert (issue.table, issue.column, issue.n_rows) == ("orders", "order_date", 1)
    assert issue.examples == ("row 3: account_id='A1', order_date='09/26/2023'",)
    assert "match neither data.read.date_format '%d.%m.%Y'" in issue.remedy
    assert "change date_format to the format of these dates" in issue.remedy
    assert "set data.read.date_format" not in issue.remedy


# -- what is (not) read -----------------------------------------------------------------------


def test_only_orders_is_required_and_absent_tables_are_none(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "account_id,order_date,amount\nA1,2024-01-05,1\n", encoding="utf-8"
    )
    history = load_history(tmp_path, DataConfig())
    assert history.usage is None and history.tickets is None
    assert history.surveys is None and history.contracts is None
    assert sorted(history.tables()) == ["accounts", "orders"]


def test_accounts_are_derived_from_orders_when_absent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "orders.csv").write_text(
        "account_id,order_date,amount\nA2,2024-03-05,1\nA1,2024-02-01,1\nA2,2024-01-09,1\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.INFO, logger="ka_ml.data"):
        history = load_history(tmp_path, DataConfig())
    accounts = history.accounts
    assert accounts["account_id"].tolist() == ["A1", "A2"]
    assert accounts["created_at"].tolist() == [
        pd.Timestamp("2024-02-01"),
        pd.Timestamp("2024-01-09"),
    ]
    assert accounts["name"].isna().all() and accounts["industry"].isna().all()
    assert history.warnings == ()  # a note, not a warning
    notes = [r for r in caplog.records if r.levelno == logging.INFO]
    assert any("derived" in r.getMessage() for r in notes)


def test_subfolders_like_the_demo_truth_are_never_read(
    tmp_path: Path, csv_history: History
) -> None:
    folder = _write_folder(tmp_path / "with_truth", ".csv")
    (folder / "_truth").mkdir()
    (folder / "_truth" / "ground_truth.csv").write_text("account_id,churned\n00017,1\n")
    (folder / "_truth" / "orders.csv").write_text("this is not, the orders\n\x00\x01")
    (folder / "README.txt").write_text("notes about the export\n")
    (folder / "invoices.parquet").write_bytes(b"not parquet at all")
    history = load_history(folder, DataConfig())
    _assert_same_history(csv_history, history)


def test_warnings_are_logged_and_kept_in_the_history(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "orders.csv").write_text(
        "account_id,order_date,amount\nA1,2024-01-05,1\nA1,2024-01-05,1\n", encoding="utf-8"
    )
    with caplog.at_level(logging.WARNING, logger="ka_ml.data"):
        history = load_history(tmp_path, DataConfig())
    assert len(history.warnings) == 1
    assert "exactly repeat" in history.warnings[0]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == list(
        history.warnings
    )
    assert history.source == str(tmp_path)


def test_a_missing_source_or_a_plain_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KaMlError, match="does not exist"):
        load_history(tmp_path / "nope", DataConfig())
    (tmp_path / "orders.csv").write_text("account_id,order_date,amount\n")
    with pytest.raises(KaMlError, match="folder that holds"):
        resolve_source(tmp_path / "orders.csv")
    with pytest.raises(KaMlError, match="unsupported URI"):
        resolve_source("ftp://files/ka")  # database URLs: tests/test_sql_source.py


def test_database_uris_and_magic_bytes_identify_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write_sqlite(tmp_path / "crm.db")
    assert resolve_source(f"sqlite:///{path}") == ("sqlite", path)  # sqlite:////abs/path
    # three slashes before an absolute path, as people often write it
    assert resolve_source("sqlite:///" + str(path).lstrip("/")) == ("sqlite", path)
    monkeypatch.chdir(tmp_path)
    assert resolve_source("sqlite:///crm.db") == ("sqlite", Path("crm.db"))
    duck = _write_duckdb(tmp_path / "export.bin")  # no telling extension: magic bytes decide
    assert resolve_source(duck) == ("duckdb", duck)


def test_database_table_names_from_config_must_be_plain_identifiers(tmp_path: Path) -> None:
    path = _write_sqlite(tmp_path / "data.sqlite")
    cfg = DataConfig(tables={"orders": 'orders"; DROP TABLE accounts; --'})
    with pytest.raises(DataValidationError) as err:
        load_history(path, cfg)
    assert "not a plain table name" in str(err.value)
    assert "table 'orders'" in str(err.value)
    # nothing was dropped
    assert load_history(path, DataConfig()).accounts["account_id"].tolist() == [
        "00017",
        "00042",
        "B-7",
    ]


def test_database_table_remap_reads_another_table(tmp_path: Path) -> None:
    path = tmp_path / "crm.duckdb"
    con = duckdb.connect(str(path))
    con.register("frame", _orders())
    con.execute("CREATE TABLE Sales AS SELECT * FROM frame")
    con.close()
    history = load_history(path, DataConfig(tables={"orders": "sales"}))
    assert len(history.orders) == len(_orders())


# -- property: CSV and Parquet of the same orders agree -----------------------------------------

_ids = st.text(alphabet="0123456789AB-", min_size=1, max_size=6).filter(
    lambda s: s.strip("-") != "" and s.lower() not in {"na", "nan"}
)
_rows = st.tuples(
    _ids,
    st.dates(
        min_value=pd.Timestamp("1990-01-01").date(), max_value=pd.Timestamp("2040-12-31").date()
    ),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_rows, min_size=1, max_size=12))
def test_random_orders_round_trip_csv_and_parquet_identically(
    rows: list[tuple[str, object, float]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    frame = pd.DataFrame(rows, columns=["account_id", "order_date", "amount"])
    frame["order_date"] = pd.to_datetime(frame["order_date"])
    csv_dir, pq_dir = tmp_path_factory.mktemp("csv"), tmp_path_factory.mktemp("pq")
    frame.to_csv(csv_dir / "orders.csv", index=False)
    frame.to_parquet(pq_dir / "orders.parquet", index=False)
    from_csv = load_history(csv_dir, DataConfig())
    from_pq = load_history(pq_dir, DataConfig())
    _assert_same_history(from_csv, from_pq)
    kept = frame.drop_duplicates()
    assert len(from_csv.orders) == len(kept)
    assert sorted(from_csv.orders["amount"]) == sorted(kept["amount"])


# -- a lake's table folders ------------------------------------------------------------------


def test_a_lake_folder_is_read_by_the_local_engine_as_spark_reads_it(
    tmp_path: Path, csv_history: History
) -> None:
    """Seen (a distributor's data platform): orders as ``orders/year=/month=/part-0.parquet``
    read by ``--engine spark`` but "the required table is missing ... found nothing" locally,
    and so by ``train``, which reads its data on this machine. The parts are read as one
    table with the partition keys as columns, as Spark reads them (not contract columns:
    no feature reads them)."""
    history = load_history(_write_lake(tmp_path / "lake"), DataConfig())
    dates = history.orders["order_date"]  # other columns than the contract's are text
    assert (history.orders["year"] == dates.dt.year.astype(str)).all()
    assert (history.orders["month"] == dates.dt.month.astype(str)).all()
    pd.testing.assert_frame_equal(
        history.orders.drop(columns=["year", "month"]), csv_history.orders
    )
    for name, frame in csv_history.tables().items():
        if name != "orders":
            pd.testing.assert_frame_equal(history.tables()[name], frame, obj=name)


def test_parts_that_disagree_on_a_columns_type_are_an_error_naming_both(tmp_path: Path) -> None:
    """One month re-exported with the amounts as text: which type wins would depend on the
    reader (and the Spark engine's reading differs), so neither is guessed."""
    lake = _write_lake(tmp_path / "lake")
    odd = next((lake / "orders").rglob("*.parquet"))
    frame = pd.read_parquet(odd).drop(columns=["year", "month"], errors="ignore")
    odd.unlink()
    frame.assign(amount=frame["amount"].astype(str)).to_parquet(odd, index=False)
    with pytest.raises(DataValidationError) as err:
        load_history(lake, DataConfig())
    (issue,) = err.value.issues
    assert (issue.table, issue.column) == ("orders", "amount")
    assert "the part files of the folder 'orders' disagree on this column's type" in issue.problem
    assert "number (double) in" in issue.problem and "text (large_string) in" in issue.problem
    assert str(odd.relative_to(lake / "orders")) in issue.problem
    assert "same column types" in issue.remedy


@pytest.mark.parametrize(("column", "level"), [("amount", "error"), ("product", "warning")])
def test_parts_without_a_column_the_others_have_are_named(
    tmp_path: Path, column: str, level: str
) -> None:
    """One month exported without the amounts: "rows without a value in amount (14,768
    rows)" named rows, not the file. A required column missing from parts is an error
    naming them; an optional one a warning, its rows read without it."""
    lake = _write_lake(tmp_path / "lake")
    odd = sorted((lake / "orders").rglob("*.parquet"))[-1]
    frame = pd.read_parquet(odd).drop(columns=[column, "year", "month"], errors="ignore")
    odd.unlink()
    frame.to_parquet(odd, index=False)
    parts = len(list((lake / "orders").rglob("*.parquet")))
    said = (
        f"1 of the {parts} part files of the folder 'orders' has no column '{column}' "
        f"('{odd.relative_to(lake / 'orders')}')"
    )
    if level == "error":
        with pytest.raises(DataValidationError) as err:
            load_history(lake, DataConfig())
        (issue,) = err.value.issues  # not also "rows without a value in amount"
        assert (issue.table, issue.column) == ("orders", "amount") and issue.problem == said
        return
    history = load_history(lake, DataConfig())
    assert any(said + ": their rows are read without it" in w for w in history.warnings)
    assert history.orders["product"].isna().sum() >= len(frame)


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        ("delta", "it is a Delta table, which only the Spark engine reads"),
        ("csv parts", "it holds CSV/text part files"),
        ("empty", "it holds no Parquet file"),
    ],
)
def test_a_table_folder_this_engine_cannot_read_says_why_and_what_reads_it(
    tmp_path: Path, layout: str, why: str
) -> None:
    folder = tmp_path / "orders"
    folder.mkdir()
    if layout == "delta":
        (folder / "_delta_log").mkdir()
        _orders().to_parquet(folder / "part-0.parquet", index=False)
    elif layout == "csv parts":
        _orders().to_csv(folder / "part-00000.csv", index=False)
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path, DataConfig())
    (issue,) = err.value.issues  # not also "the required table is missing"
    assert issue.table == "orders" and f"the folder 'orders' is not read: {why}" in issue.problem
    assert "--engine spark" in issue.remedy and "orders.parquet" in issue.remedy
    # an optional table's folder: a warning, the run goes on without it
    (tmp_path / "orders.csv").write_text(ORDERS_CSV)
    folder.rename(tmp_path / "tickets")
    history = load_history(tmp_path, DataConfig())
    assert history.tickets is None
    assert any("the folder 'tickets' is not read" in w for w in history.warnings)


def test_a_table_both_as_a_file_and_as_a_folder_is_ambiguous(tmp_path: Path) -> None:
    lake = _write_lake(tmp_path / "lake")
    _orders().to_csv(lake / "orders.csv", index=False)
    with pytest.raises(DataValidationError) as err:
        load_history(lake, DataConfig())
    assert any(
        i.table == "orders" and "'orders' and 'orders.csv'" in i.problem for i in err.value.issues
    )


def test_the_file_size_limit_counts_every_part_of_a_table_folder(tmp_path: Path) -> None:
    lake = _write_lake(tmp_path / "lake")
    parts = sum(p.stat().st_size for p in (lake / "orders").rglob("*.parquet"))
    largest = max(p.stat().st_size for p in (lake / "orders").rglob("*.parquet"))
    limit = (largest + 1) / 2**20  # every part is under it, the table is not
    assert parts > limit * 2**20
    with pytest.raises(DataValidationError) as err:
        load_history(lake, DataConfig(max_file_mb=limit))
    assert any(
        "'orders' is" in i.problem and "data.max_file_mb" in i.problem for i in err.value.issues
    )


# -- tables the user names ------------------------------------------------------------------
ORDERS_CSV = "account_id,order_date,amount\nA1,2024-01-05,10\nA2,2024-01-06,20\n"


def test_a_table_mapped_in_the_config_but_missing_is_an_error_naming_it(tmp_path: Path) -> None:
    """Seen: tables: {tickets: cases} with the export tool's cases_2025-11-28.csv: validate
    said valid and training ran without the tickets, silently."""
    (tmp_path / "orders.csv").write_text(ORDERS_CSV)
    (tmp_path / "cases_2025-11-28.csv").write_text("account_id,opened_at\nA1,2024-01-02\n")
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path, DataConfig(tables={"tickets": "cases"}))
    (issue,) = err.value.issues
    assert issue.table == "tickets"
    assert f"data.tables maps tickets to 'cases', but the source '{tmp_path}' has no" in (
        issue.problem
    )
    assert "found 'cases_2025-11-28.csv', 'orders.csv'" in issue.problem
    assert "set data.tables: {tickets: cases_2025-11-28}" in issue.remedy
    assert load_history(tmp_path, DataConfig()).tickets is None  # unmapped: optional as ever


def test_files_named_like_a_table_in_a_format_not_read_are_reported(tmp_path: Path) -> None:
    """Seen: customers.xlsx mapped as accounts was skipped without a word and the accounts
    were derived from the orders ('accounts 707 rows')."""
    (tmp_path / "orders.csv").write_text(ORDERS_CSV)
    (tmp_path / "customers.xlsx").write_bytes(b"PK\x03\x04 not read")
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path, DataConfig(tables={"accounts": "customers"}))
    (issue,) = err.value.issues
    assert issue.table == "accounts" and "'customers.xlsx': Excel files are not read" in (
        issue.problem
    )
    assert "save it as CSV (UTF-8) or Parquet" in issue.remedy and "customers.csv" in issue.remedy
    # unmapped optional table: a warning, the run goes on without it
    (tmp_path / "tickets.json").write_text("[]")
    (tmp_path / "orders.xlsx").write_bytes(b"PK")
    history = load_history(tmp_path, DataConfig())
    orders, tickets = history.warnings[:2]
    assert "'orders.xlsx' was not read (Excel files are not read)" in orders
    assert "read from the other file" in orders
    assert "'tickets.json' was not read (files of this format are not read)" in tickets
    assert "without the tickets table" in tickets
    with pytest.raises(KaMlError, match="Excel files are not read"):
        resolve_source(tmp_path / "orders.xlsx")


def test_a_table_mapped_with_its_file_extension_is_read(tmp_path: Path) -> None:
    """Seen: tables: {orders: sales_lines.csv} answered 'expected a file sales_lines.csv.csv'."""
    (tmp_path / "sales_lines.csv").write_text(ORDERS_CSV)
    cfg = DataConfig(tables={"orders": "sales_lines.csv", "tickets": "cases.CSV.gz"})
    assert cfg.tables == {"orders": "sales_lines", "tickets": "cases"}
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path, cfg)
    assert "no file cases.csv, cases.csv.gz or cases.parquet" in str(err.value)
    assert len(load_history(tmp_path, DataConfig(tables={"orders": "sales_lines.csv"})).orders) == 2


def test_validate_prints_each_table_once_and_says_when_accounts_were_derived(
    tmp_path: Path,
) -> None:
    """Seen: 'accounts 400 rows' and then 'accounts 400'; and derived accounts ('accounts 707
    rows' from an unread customers file) looked like a table that was read."""
    from typer.testing import CliRunner

    from ka_ml.cli import app

    (tmp_path / "orders.csv").write_text(ORDERS_CSV)
    res = CliRunner().invoke(app, ["validate", "--data", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = [line.split() for line in res.output.splitlines()]
    assert [w[:3] for w in lines if w and w[0] == "accounts"] == [["accounts", "2", "rows"]]
    assert "(no accounts table: derived from the ids in the data)" in res.output
    (tmp_path / "accounts.csv").write_text("account_id\nA1\nA2\n")
    res = CliRunner().invoke(app, ["validate", "--data", str(tmp_path)])
    assert res.output.count("accounts") == 1 and "derived" not in res.output


# -- a delimiter that does not split the header ----------------------------------------------

GERMAN_ACCOUNTS = (
    "Kundennummer;Name;Branche;Bundesland;Vertriebsmitarbeiter;EMail;Anlagedatum\n"
    "K0001;Bäckerei Müller GmbH;Gastronomie;Bayern;Jörg Weiß;jw@example.de;01.03.2023\n"
    "K0002;Hotel Zur Post;Hotellerie;Hessen;Jörg Weiß;jw@example.de;15.06.2023\n"
)
GERMAN_ORDERS = (
    "Kunde;Belegdatum;Nettobetrag\n"
    "K0001;05.01.2024;1.234,56\nK0001;02.02.2024;980,00\nK0002;20.01.2024;310,40\n"
)
GERMAN_COLUMNS = {
    "accounts": {
        "account_id": "Kundennummer",
        "name": "Name",
        "industry": "Branche",
        "region": "Bundesland",
        "owner": "Vertriebsmitarbeiter",
        "owner_email": "EMail",
        "created_at": "Anlagedatum",
    },
    "orders": {"account_id": "Kunde", "order_date": "Belegdatum", "amount": "Nettobetrag"},
}


def test_a_wrong_delimiter_is_one_error_per_file_naming_the_delimiter(tmp_path: Path) -> None:
    """Seen: a wholesaler's ';'-separated cp1252 ERP export (German names mapped in
    data.columns) read with data.read.delimiter ',' gave 15 errors, one per mapped column
    ("data.columns.accounts.name points to 'Name', which is not among the columns found:
    'Kundennummer;Name;Branche;...'"), none of them naming the delimiter."""
    import yaml
    from typer.testing import CliRunner

    from ka_ml.cli import app

    data = tmp_path / "erp"
    data.mkdir()
    (data / "Kunden.csv").write_text(GERMAN_ACCOUNTS, encoding="cp1252")
    (data / "Auftraege.csv").write_text(GERMAN_ORDERS, encoding="cp1252")
    read = {"delimiter": ",", "decimal": ",", "encoding": "cp1252", "date_format": "%d.%m.%Y"}
    settings = {
        "source": str(data),
        "tables": {"orders": "Auftraege", "accounts": "Kunden"},
        "columns": GERMAN_COLUMNS,
        "read": read,
    }
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"data": settings}))
    res = CliRunner().invoke(app, ["validate", "--config", str(config)])
    out = " ".join(res.output.split())
    assert res.exit_code == 2, out
    assert "The input data has 2 errors" in out
    assert "not among the columns found" not in out and "data.columns" not in out
    fix = "Fix: set data.read.delimiter: ';' (or leave it out / null to let it be detected)."
    assert out.count(fix) == 2
    assert (
        "table 'accounts' ('Kunden' in your data): under data.read.delimiter ',' the header of "
        "'Kunden.csv' is one column, 'Kundennummer;Name;Branche;Bundesland;Vertriebsmitarbeiter;"
        "EMail;Anlagedatum', which holds 7 names joined by ';': the file looks ';'-separated."
    ) in out
    assert "'Auftraege.csv' is one column, 'Kunde;Belegdatum;Nettobetrag'" in out
    # the fix it names, and leaving the delimiter out, both read the export
    for delimiter in (";", None):
        config.write_text(
            yaml.safe_dump({"data": settings | {"read": read | {"delimiter": delimiter}}})
        )
        res = CliRunner().invoke(app, ["validate", "--config", str(config)])
        assert res.exit_code == 0, res.output
        assert "orders 3 rows" in " ".join(res.output.split())


@pytest.mark.parametrize(
    ("configured", "sep", "said", "fix"),
    [
        (",", ";", "';'", "';'"),
        (";", ",", "','", "','"),
        (",", "\t", "tab", '"\\t"'),
        ("tab", "|", "'|'", "'|'"),
    ],
)
def test_without_a_column_mapping_a_wrong_delimiter_is_named_not_a_missing_account_id(
    tmp_path: Path, configured: str, sep: str, said: str, fix: str
) -> None:
    """Seen: with data.read.delimiter ',' on a ';'-separated orders.csv (no data.columns),
    "the required column is missing; columns found: 'account_id;order_date;amount'" asked to
    rename or map account_id, order_date and amount, a fix that could not work."""
    header = sep.join(["account_id", "order_date", "amount"])
    rows = "".join(
        sep.join(r) + "\n" for r in [("A1", "2024-01-05", "10"), ("A2", "2024-02-01", "7")]
    )
    (tmp_path / "orders.csv").write_text(header + "\n" + rows)
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path, DataConfig(read=ReadOptions(delimiter=configured)))
    [issue] = err.value.issues
    assert issue.table == "orders" and issue.column is None
    assert f"which holds 3 names joined by {said}: the file looks {said}-separated" in issue.problem
    assert issue.remedy == (
        f"set data.read.delimiter: {fix} (or leave it out / null to let it be detected)."
    )
    assert len(load_history(tmp_path, DataConfig()).orders) == 2  # detected when left out


def test_a_table_of_one_column_is_not_taken_for_a_wrong_delimiter(tmp_path: Path) -> None:
    """An accounts table holding only its ids has one column whatever the delimiter."""
    (tmp_path / "orders.csv").write_text(ORDERS_CSV.replace(",", ";"))
    (tmp_path / "accounts.csv").write_text("account_id\nA1\nA2\n")
    h = load_history(tmp_path, DataConfig(read=ReadOptions(delimiter=";")))
    assert sorted(h.accounts["account_id"]) == ["A1", "A2"]


def test_a_ticket_type_column_maps_to_is_complaint_with_read_yes_no(tmp_path: Path) -> None:
    """u31: a CRM's ticket type ('Complaint' / 'question') mapped to is_complaint was
    refused ("values that are not yes/no") with no setting to say what the words mean."""
    from fixtures import write_ticket_types

    from ka_ml.errors import DataValidationError

    columns = write_ticket_types(tmp_path)
    with pytest.raises(DataValidationError) as e:
        load_history(tmp_path, DataConfig(columns=columns))
    assert "data.read.yes_no: {complaint: true, question: false}" in e.value.render()
    read = ReadOptions(yes_no={" Complaint": True, "question": False})
    h = load_history(tmp_path, DataConfig(columns=columns, read=read))
    assert h.tickets is not None
    assert h.tickets["is_complaint"].tolist() == [True, False, False]


def test_a_table_whose_every_row_is_dropped_says_so_once_not_of_each_part(tmp_path: Path) -> None:
    """u31: tickets with leading zeros (1,394 ids) and one unknown account: the one row's
    issue read "that is every row of the table"; it is the two together."""
    from ka_ml.errors import DataValidationError

    pd.DataFrame(
        {"account_id": ["17", "18"], "order_date": ["2024-01-02", "2024-01-03"], "amount": [1, 2]}
    ).to_csv(tmp_path / "orders.csv", index=False)
    pd.DataFrame({"account_id": ["17", "18"], "industry": ["x", "y"]}).to_csv(
        tmp_path / "accounts.csv", index=False
    )
    pd.DataFrame({"account_id": ["0017", "0018", "99"], "opened_at": ["2024-01-05"] * 3}).to_csv(
        tmp_path / "tickets.csv", index=False
    )
    with pytest.raises(DataValidationError) as e:
        load_history(tmp_path, DataConfig())
    said = [i.problem for i in e.value.issues if i.table == "tickets"]
    assert len(said) == 2, said
    assert said[0].endswith(
        "; that is every row of the table, so its features would silently be missing from every score"
    )
    assert "; with the rows above, that is every row of the table" in said[1]
