//! The pipeline: read → decode → track → verdicts in frame order.
