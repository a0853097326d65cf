"""Run the ``langchain-e2b`` command with ``python -m langchain_e2b``."""

from langchain_e2b.cli import main

raise SystemExit(main())
