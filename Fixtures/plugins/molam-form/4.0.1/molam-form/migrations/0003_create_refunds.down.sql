-- Undo 0003: the refunds table and its index.
DROP TABLE wp_molam_refunds;
