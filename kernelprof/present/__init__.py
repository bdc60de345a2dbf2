"""Presentation: terminal tables, CSV/Markdown, plots and HTML reports. It never measures."""
