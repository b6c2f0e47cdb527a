-- Rows streamed by `apps/busy --emit-rows N` (see tasks/emit.py).
CREATE TABLE busy_rows (
    task INT NOT NULL,
    k INT NOT NULL,
    k2 BIGINT NOT NULL,
    PRIMARY KEY (task, k)
);
