"""One id or name written two ways, and the rows of accounts the accounts table lacks.

No I/O. The checks :func:`ka_ml.data.validate.validate_tables` runs on account ids and owner
names, each with the texts it words its findings in (the Spark reader finds the same and
words them with these):
- account ids read in one letter case (``data.account_id_case``, :func:`fold_case`) or
  without their leading zeros (``data.account_id_zeros: strip``, :func:`zero_core`);
- ids of one table that differ only in letter case or leading zeros
  (:func:`case_twin_issues`, :func:`zero_padding_twins`): read as different accounts,
  with a warning;
- rows of accounts missing from the accounts table, dropped with a warning
  (:func:`drop_unknown_accounts`): those whose id matches a known id but for letter case
  or leading zeros with a warning of their own, a table left without any row with an
  error; when no order is left, :func:`no_orders_left` says why, naming the spelling that
  explains it;
- owner names that differ only in letter case or spacing, read as one owner with a
  warning (:func:`one_spelling`, :func:`owner_spellings`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import pandas as pd

from ka_ml.data.schema import EVENT_DATE
from ka_ml.data.table import Table, is_in, show_cell
from ka_ml.errors import DataIssue


# -- account ids --------------------------------------------------------------------------
def drop_unknown_accounts(
    tables: dict[str, Table], *, case_checked: bool, zeros_checked: bool = False
) -> tuple[list[DataIssue], list[DataIssue]]:
    """When an accounts table is given, rows of other accounts are dropped with a warning.

    With ``case_checked`` (``data.account_id_case: keep``), the rows whose id matches a
    known id once letter case is ignored get a warning of their own that names the setting:
    they are real rows of known accounts, not test or deleted accounts. Likewise with
    ``zeros_checked`` (``data.account_id_zeros: keep``) for ids that match only without
    their leading zeros (a user's export lost them from one month on: 41,036 of 85,140
    order rows dropped as "test or deleted accounts"). Returns (those warnings, the
    others)."""
    accounts = tables.get("accounts")
    if accounts is None:
        return [], []
    known = accounts.frame["account_id"].dropna()
    issues: list[DataIssue] = []
    case_issues: list[DataIssue] = []
    for name, t in tables.items():
        if name == "accounts":
            continue
        ids = t.frame["account_id"]
        unknown = ids.notna() & ~is_in(ids, known.unique())
        if not unknown.any():
            continue
        # a table none of whose rows is left would silently take its features with it
        # (a user's usage export with lower-case ids: 'valid', exit 0, "usage 0 rows");
        # orders have an error of their own for that (no_orders_left)
        whole = name != "orders" and bool(unknown.all())
        mark = len(issues), len(case_issues)
        rest = unknown
        if case_checked:
            cased = _case_strays(t, unknown, known, "the accounts table", dropped=True)
            if cased is not None:
                case_issues.append(cased[0])
                rest = unknown & ~cased[1]
        if zeros_checked and rest.any():
            padded = _zero_strays(t, rest, known)
            if padded is not None:
                case_issues.append(padded[0])
                rest = rest & ~padded[1]
        if rest.any():
            n_ids = ids[rest].nunique()
            issues.append(
                t.issue(
                    "account_id",
                    f"rows of accounts missing from the accounts table were dropped ({n_ids} "
                    "accounts)",
                    "add these accounts to the accounts table, or remove their rows; nothing "
                    "to do if they are test or deleted accounts.",
                    rest,
                    [EVENT_DATE[name]],
                    level="warning",
                )
            )
        if whole:  # the first said of the table takes the sentence; the rest point to it
            n_case = len(case_issues) - mark[1]
            case_issues[mark[1] :] = [
                _every_row(i, k > 0) for k, i in enumerate(case_issues[mark[1] :])
            ]
            issues[mark[0] :] = [
                _every_row(i, n_case + k > 0) for k, i in enumerate(issues[mark[0] :])
            ]
        t.drop(unknown)
    return case_issues, issues


def _every_row(issue: DataIssue, with_others: bool = False) -> DataIssue:
    """A warning about dropped rows that took every row of its table, as an error;
    ``with_others``: not alone (a user's 1 unknown row read "that is every row of the table"
    beside 1,394 rows dropped for leading zeros)."""
    whole = "with the rows above, " if with_others else ""
    return replace(
        issue,
        level="error",
        problem=f"{issue.problem}; {whole}that is every row of the table, so its features "
        "would silently be missing from every score",
    )


def fold_case(ids: pd.Series, case: str) -> pd.Series:
    """Account ids in one letter case (``data.account_id_case``); ``keep`` leaves them."""
    if case == "upper":
        return ids.str.upper()
    if case == "lower":
        return ids.str.lower()
    return ids


def case_twins_texts(groups: int) -> tuple[str, str]:
    """(problem, fix) of the warning about ids of one table that differ only in case."""
    return (
        f"account_ids that differ only in letter case ({groups} groups): they are read as "
        "different accounts",
        CASE_FIX,
    )


CASE_FIX = (
    "if they are the same customer (an id typed by hand in another case), set "
    "data.account_id_case: upper (or lower) so ids are read in one case; keep "
    "data.account_id_case: keep only if your system's ids are case-sensitive (as "
    "Salesforce's 15-character ids are) and these are different accounts."
)


def case_twin_issues(tables: dict[str, Table]) -> list[DataIssue]:
    """Warnings about ids that differ only in letter case ('KA-0287', 'ka-0287'), which
    ``data.account_id_case: keep`` reads as two accounts.

    With an accounts table: twins inside it (the other tables' ids are compared with it
    where rows are dropped, see :func:`drop_unknown_accounts`). Without one: twins inside
    orders (each spelling would become an account of its own), and rows of the other
    tables whose id matches an id in orders only when case is ignored."""
    accounts = tables.get("accounts")
    if accounts is not None:
        twins = _case_twins(accounts)
        return [twins] if twins is not None else []
    issues = [i for t in tables.values() if (i := _case_twins(t)) is not None]
    orders = tables.get("orders")
    if orders is None:
        return issues
    known = orders.frame["account_id"].dropna()
    known_ids = known.unique()
    for name, t in tables.items():
        if name == "orders":
            continue
        ids = t.frame["account_id"]
        other = ids.notna() & ~is_in(ids, known_ids)
        cased = _case_strays(t, other, known, "orders", dropped=False) if other.any() else None
        if cased is not None:
            issues.append(cased[0])
    return issues


def _case_twins(t: Table) -> DataIssue | None:
    ids = pd.Series(t.frame["account_id"].dropna().unique(), dtype="str")
    return _twin_issue(t.name, ids, ids.str.lower(), case_twins_texts)


def _twin_issue(
    name: str, ids: pd.Series, key: pd.Series, texts: Callable[[int], tuple[str, str]]
) -> DataIssue | None:
    """The warning about distinct ``ids`` of one table that share a ``key`` (the same id
    but for letter case, or leading zeros), each group an example; None without any."""
    twins = key.duplicated(keep=False)
    if not twins.any():
        return None
    groups = ids[twins].groupby(key[twins].to_numpy(), sort=True)
    examples = tuple(" and ".join(f"'{show_cell(v)}'" for v in sorted(g)) for _, g in groups)
    problem, remedy = texts(groups.ngroups)
    return DataIssue(name, "account_id", problem, remedy, examples=examples, level="warning")


def _strays(
    t: Table,
    candidates: pd.Series,
    known: pd.Series,
    key: Callable[[pd.Series], pd.Series],
    describe: Callable[[int, str, str], tuple[str, str]],
) -> tuple[DataIssue, pd.Series] | None:
    """(the warning, the rows) of ``candidates`` whose id matches a ``known`` id once both
    are read by ``key`` (in lower case, without leading zeros); None when there are none.
    ``describe(ids, one of ours, its known spelling)`` gives the (problem, remedy)."""
    pool = t.frame["account_id"][candidates]  # keyed: the candidate rows only, not the table
    hit = is_in(key(pool), key(known).unique()).to_numpy()
    if not hit.any():
        return None
    rows = candidates.copy()
    rows[candidates] = hit
    match = _first_match(pool[hit], known, key)
    assert match is not None  # every hit matches
    problem, remedy = describe(pool[hit].nunique(), show_cell(match[0]), show_cell(match[1]))
    return t.issue("account_id", problem, remedy, rows, [EVENT_DATE[t.name]], "warning"), rows


def _case_strays(
    t: Table, candidates: pd.Series, known: pd.Series, where: str, *, dropped: bool
) -> tuple[DataIssue, pd.Series] | None:
    """(the warning, the rows) of ``candidates`` whose id matches a ``known`` id only when
    letter case is ignored; None when there are none."""
    fate = (
        "were dropped: they are likely rows of those accounts, now lost"
        if dropped
        else "are read as accounts of their own"
    )
    return _strays(
        t,
        candidates,
        known,
        lambda s: s.str.lower(),
        lambda n, ours, theirs: (
            f"rows whose account_id matches an account of {where} only when letter case is "
            f"ignored ({n} ids; e.g. '{ours}' is '{theirs}' there) {fate}",
            "set data.account_id_case: upper (or lower) so ids match whatever their case, or "
            "correct the ids in the export; keep data.account_id_case: keep only if your "
            "system's ids are case-sensitive and these are different accounts.",
        ),
    )


def _zero_strays(
    t: Table, candidates: pd.Series, known: pd.Series
) -> tuple[DataIssue, pd.Series] | None:
    """(the warning, the rows) of ``candidates`` whose id matches an id of the accounts
    table only without leading zeros; None when there are none."""
    return _strays(
        t,
        candidates,
        known,
        zero_core,
        lambda n, ours, theirs: (
            "rows whose account_id matches an account of the accounts table only without "
            f"leading zeros ({n} ids; e.g. '{ours}' is '{theirs}' there) were dropped: they "
            "are likely rows of those accounts, now lost",
            "set data.account_id_zeros: strip so ids match with or without their leading "
            "zeros, or export the id column as text everywhere so the zeros survive.",
        ),
    )


def zero_core(ids: pd.Series) -> pd.Series:
    """Ids without their leading zeros ('00017' -> '17', '000' -> '0'): equal cores are the
    same id spelled with and without the zeros a numeric export drops."""
    return ids.str.lstrip("0").replace("", "0")


def _whole_core(ids: pd.Series) -> pd.Series:
    """Ids without a decimal part of zeros ('1000.0' -> '1000'): a spreadsheet that stored
    the id column as numbers wrote them so."""
    return ids.str.replace(r"\.0+$", "", regex=True)


def zero_padding_twins(name: str, table: Table) -> DataIssue | None:
    """A warning when one table spells account ids that differ only in leading zeros
    ('00017' and '17'): ids are text, so they are two accounts; an export that wrote the
    column as a number in part of the file would split one customer in two."""
    ids = pd.Series(table.frame["account_id"].dropna().unique(), dtype="str")
    if ids.empty or not ids.str.startswith("0").any():
        return None
    return _twin_issue(name, ids, zero_core(ids), zero_twins_texts)


def zero_twins_texts(groups: int) -> tuple[str, str]:
    """(problem, fix) of the warning about ids that differ only in leading zeros."""
    return (
        f"account_ids that differ only in leading zeros ({groups} groups): they are read as "
        "different accounts",
        "if they are the same customer, set data.account_id_zeros: strip (or export the id "
        "column as text everywhere so the zeros survive); nothing to do if they are different "
        "accounts.",
    )


def no_orders_left(
    dropped: Sequence[DataIssue], unknown_ids: pd.Series, accounts: Table | None
) -> DataIssue:
    """The error when dropping rows left no order, with the fix for its cause.

    ``dropped``: the orders' issues of the steps that dropped rows (their warnings are not
    shown with an error: say why here). ``unknown_ids``: the orders' account_ids that were
    left after the as-of cut, all missing from the accounts table (empty when none were).
    """
    examples = [f"{i.problem} ({i.n_rows} rows)" for i in dropped]
    fixes = []
    if any(i.column == EVENT_DATE["orders"] for i in dropped):
        fixes.append("pass a later --as-of (orders dated on or after it were dropped)")
    ids = unknown_ids.dropna()
    if len(ids) and accounts is not None:
        known = accounts.frame["account_id"].dropna()
        examples.append(f"account_ids in orders: {_quoted(ids)}")
        examples.append(f"account_ids in the accounts table: {_quoted(known)}")
        for key, fix in _SPELLINGS:
            if match := _first_match(ids, known, key):
                fixes.append(fix.format(ours=match[0], theirs=match[1]))
                break
        else:  # no spelling explains it
            fixes.append(
                "make orders use the account_ids of the accounts table: no order's "
                "account_id is in it (ids are read as text and must match exactly; compare "
                "the examples, e.g. for prefixes, leading zeros or another id column, "
                "which data.columns can map)"
            )
    return DataIssue(
        "orders",
        None,
        "no orders remain after dropping the rows reported in the warnings",
        "; ".join(fixes) + "." if fixes else "correct the rows reported above.",
        examples=tuple(examples),
    )


# the ways orders and the accounts table spell the same ids apart, each with its fix
_SPELLINGS: tuple[tuple[Callable[[pd.Series], pd.Series], str], ...] = (
    (
        zero_core,
        "orders and the accounts table spell the same ids differently: they differ in "
        "leading zeros ('{ours}' in orders is '{theirs}' in accounts; ids are read as text, "
        "so they do not match); set data.account_id_zeros: strip, or restore the zeros in "
        "the table that lost them (export the id column as text, not as a number)",
    ),
    (
        _whole_core,
        "orders and the accounts table spell the same ids as whole numbers and as decimals "
        "('{ours}' in orders is '{theirs}' in accounts: a spreadsheet stored the id column "
        "as numbers); export the id column as text in both",
    ),
    (
        lambda s: s.str.lower(),
        "orders and the accounts table spell the same ids in another letter case ('{ours}' "
        "in orders is '{theirs}' in accounts); set data.account_id_case: upper (or lower) "
        "so they match",
    ),
)


def _first_match(
    ids: pd.Series, known: pd.Series, key: Callable[[pd.Series], pd.Series]
) -> tuple[str, str] | None:
    """The first of ``ids`` whose ``key`` (the id without leading zeros, in lower case, ...)
    is a ``known`` id's, and that known id; None when none is."""
    mine, theirs = key(ids), key(known)
    hit = is_in(mine, theirs.unique())
    if not hit.any():
        return None
    return ids[hit].iloc[0], known[theirs == mine[hit].iloc[0]].iloc[0]


def _quoted(ids: pd.Series, n: int = 5) -> str:
    """The first ``n`` distinct ids, quoted as the data spell them."""
    first = ids.drop_duplicates()
    shown = ", ".join(f"'{show_cell(v)}'" for v in first.head(n))
    return shown + (f" and {len(first) - n} more" if len(first) > n else "")


# -- owner names --------------------------------------------------------------------------
def one_spelling(counts: pd.Series) -> dict[str, str]:
    """Each spelling of an owner name (``counts``: accounts per spelling) that differs from
    another only in letter case or spacing -> the spelling most of its accounts use (ties:
    the first in sorted order); empty when every owner is written one way. A user's 'bernd
    vogt' on 35 accounts and 'Bernd Vogt' on 148 became two owners, two reports and two
    digests to one address."""
    counts = counts[[isinstance(n, str) and n.strip() != "" for n in counts.index]]
    if counts.empty:
        return {}
    keys = pd.Series([" ".join(str(n).casefold().split()) for n in counts.index], counts.index)
    out: dict[str, str] = {}
    for _, spellings in keys.groupby(keys.to_numpy()):
        if len(spellings) < 2:
            continue
        ranked = sorted(spellings.index, key=lambda n: (-int(counts[n]), str(n)))
        out.update({str(n): str(ranked[0]) for n in ranked[1:]})
    return out


def owner_spellings_texts(mapping: Mapping[str, str], counts: pd.Series) -> tuple[str, str]:
    """(problem, remedy) of the warning that owner spellings were read as one owner."""
    said = "; ".join(
        f"'{a}' ({int(counts[a])} accounts) as '{b}' ({int(counts[b])})"
        for a, b in sorted(mapping.items())[:5]
    ) + (f"; and {len(mapping) - 5} more" if len(mapping) > 5 else "")
    return (
        f"owner names that differ only in letter case or spacing were read as one owner: {said}",
        "nothing to do if each is one person; otherwise tell them apart in the export "
        "(owners are matched ignoring case and spacing).",
    )


def owner_spellings(t: Table) -> list[DataIssue]:
    """Owner names that differ only in case or spacing are one owner (:func:`one_spelling`),
    said as a warning."""
    owner = t.frame["owner"]
    counts = owner.value_counts()
    mapping = one_spelling(counts)
    if not mapping:
        return []
    renamed = owner.isin(list(mapping))
    t.frame["owner"] = owner.replace(mapping)
    problem, remedy = owner_spellings_texts(mapping, counts)
    show = ["name", "owner"] if "name" in t.frame.columns else ["owner"]
    return [t.issue("owner", problem, remedy, renamed, show, level="warning")]
