"""Delivery: every account manager receives their own explained accounts.

- :mod:`ka_ml.delivery.digest`: per-owner reports and short digests (pure, plus the writer
  of ``owners/`` in the score output folder);
- :mod:`ka_ml.delivery.addresses`: where each owner's digest goes (addresses, placeholders,
  slugs; imports no model or report code);
- :mod:`ka_ml.delivery.mail`: the digests as e-mails (SMTP, or ``.eml`` files);
- :mod:`ka_ml.delivery.api`: the read-only HTTP API over the score history;
- :mod:`ka_ml.delivery.writeback`: the scores table upserted into a SQL database;
- :mod:`ka_ml.delivery.run_delivery`: the deliveries a score run makes itself (owner
  files, write-back), run inside its staged output folder.
"""
