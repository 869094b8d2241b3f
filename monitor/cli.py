"""Command line: ``monitor run|check|demo|rules|feeds|alerts|status``."""

import click


@click.group()
def main() -> None:
    """Arabic news-monitoring alert daemon."""
