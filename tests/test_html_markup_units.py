"""Unit tests of the HTML report's building blocks (``html_report.markup``): number formats, tables
that escape what they are given (model names and notes come from users' files), sort keys for
numeric columns, and the page shell."""

from html.parser import HTMLParser

from onnxdeploy.html_report.markup import Cell, count, num_cell, number, page, table


class _Cells(HTMLParser):
    """The tags, attributes and text of a fragment, as a browser's parser reads them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_numbers_read_as_people_write_them():
    assert number(None) == "-" and count(None) == "-"
    assert number(1234567) == "1,234,567" and number(True) == "1"  # a bool is not a count
    assert number(3.14159) == "3.14" and number(0.000123456, 2, " ms") == "0.00012 ms"
    assert [count(v) for v in (999, 1000, 25_600_000, 3_200_000_000)] == [
        "999",
        "1k",
        "25.6M",
        "3.2G",
    ]


def test_a_table_escapes_what_it_is_given_unless_told_it_is_markup():
    hostile = '<script>alert("x")</script>'
    html = table(
        ["model", "<b>ms</b>"],
        [[hostile, Cell('<a href="r.html">report</a>', raw_html=True)]],
        caption="a & b",
    )
    parsed = _Cells(html)
    assert "script" not in [tag for tag, _ in parsed.tags]  # text, not an element
    assert hostile in "".join(parsed.text) and "<b>ms</b>" in "".join(parsed.text)
    assert ("a", {"href": "r.html"}) in parsed.tags  # the one cell marked as markup
    assert "a & b" in "".join(parsed.text)


def test_numeric_columns_align_right_and_sort_by_their_raw_value():
    rows = [["fp32", num_cell(12.3456, suffix=" ms")], ["int8", num_cell(None)]]
    parsed = _Cells(table(["model", "p50"], rows, row_classes=["", "chosen"]))
    headers = [attrs for tag, attrs in parsed.tags if tag == "th"]
    assert headers[0] == {"scope": "col"} and headers[1] == {"scope": "col", "class": "num"}
    cells = [attrs for tag, attrs in parsed.tags if tag == "td"]
    assert cells[1] == {"class": "num", "data-sort": "12.3456"}  # the number, not "12.3 ms"
    assert cells[3] == {"class": "num", "data-sort": ""}  # no value: sorts as text, first
    assert [attrs for tag, attrs in parsed.tags if tag == "tr"][1:] == [{}, {"class": "chosen"}]
    assert "12.3 ms" in parsed.text and "-" in parsed.text
    # a column with any non-numeric cell is not a numeric column
    mixed = _Cells(table(["x"], [[num_cell(1.0)], ["n/a"]]))
    assert [a for t, a in mixed.tags if t == "th"] == [{"scope": "col"}]


def test_the_page_escapes_its_title_and_links_and_ends_with_its_script():
    html = page("q <&> r", ["<section id='s'>body</section>"], [("s", "<Summary>")])
    parsed = _Cells(html)
    assert "q <&> r" in parsed.text and "<Summary>" in parsed.text
    assert ("a", {"href": "#s"}) in parsed.tags
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</script></body></html>")
