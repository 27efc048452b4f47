"""Reports that read stored records: HTML and Markdown, figures, CSV tables. No torch.

* ``tables``: numeric summaries over seeds (median, IQR, n) and their formatted views
* ``figures``: one function per figure
* ``render``: sections, HTML and Markdown tables, embedded figures, the page
* ``theory``: the theory-check section, rendered from a computed check
* ``build``: :func:`build_report`, one store or a comparison of several
"""

from rnnbench.report.build import build_report

__all__ = ["build_report"]
