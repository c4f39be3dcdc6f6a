"""Human-facing output: console tables, the HTML report, spreadsheets."""
