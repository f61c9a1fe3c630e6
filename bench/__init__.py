"""dagwave's benchmarks: ``python -m bench graph`` and ``python -m bench run``.

Every figure is measured side by side with its peers in the same process and
the same run, and printed as a table with ratios, so the numbers compare like
with like on whatever machine runs them. Peers come from the ``bench`` extra
(``pip install -e '.[bench]'``).
"""
