//! Printing verdicts: table, JSON, JSON Lines, markdown.
