"""The result CSVs the measuring tools write, read back for the tables of the docs."""

import csv


def write_rows(path, rows, fields):
    """`rows` (dicts) as a CSV of `fields` at `path`; floats to 4 significant digits, None as empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _format(row.get(key)) for key in fields})


def read_rows(path, floats=(), ints=(), bools=()):
    """The rows of a CSV written by `write_rows`, the named columns parsed back
    (an empty float or int as None, a bool as the text "True").

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.csv"
    >>> write_rows(path, [{"a": 1 / 3, "b": None, "c": True}], ["a", "b", "c"])
    >>> read_rows(path, floats=["a", "b"], bools=["c"])
    [{'a': 0.3333, 'b': None, 'c': True}]
    """
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        for key in floats:
            row[key] = float(row[key]) if row[key] else None
        for key in ints:
            row[key] = int(row[key]) if row[key] else None
        for key in bools:
            row[key] = row[key] == "True"
    return rows


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else value


def with_table(text, start, end, table):
    r"""`text` with `table` between its `start` and `end` markers (the markers kept).

    Example:
    >>> with_table("a\n<!-- s -->\nold\n<!-- e -->\nb", "<!-- s -->", "<!-- e -->", "new")
    'a\n<!-- s -->\nnew\n<!-- e -->\nb'
    """
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n{table}\n{end}{tail}"
