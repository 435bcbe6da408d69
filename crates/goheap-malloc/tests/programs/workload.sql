-- An SQLite workload for tests/real_programs.rs: build a table of 100,000 rows, index it,
-- query, update, delete, vacuum and check integrity. Deterministic output.
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
INSERT INTO t SELECT x, printf('name-%06d', (x * 7919) % 100000), x % 97, (x * 31 % 1000) / 7.0,
                     zeroblob(x % 300) FROM c;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp_val ON t(grp, val);
SELECT count(*), sum(grp), printf('%.3f', sum(val)), sum(length(blob)) FROM t;
SELECT grp, count(*), printf('%.3f', avg(val)) FROM t GROUP BY grp ORDER BY grp LIMIT 10;
SELECT id, name FROM t WHERE name BETWEEN 'name-050000' AND 'name-050010' ORDER BY name;
UPDATE t SET val = val * 2, name = name || '-x' WHERE grp = 3;
DELETE FROM t WHERE id % 10 = 0;
SELECT count(*), printf('%.3f', sum(val)) FROM t;
SELECT group_concat(name, ',') FROM (SELECT name FROM t ORDER BY val DESC, id LIMIT 20);
SELECT a.grp, count(*) FROM t a JOIN t b ON a.id = b.id + 1 WHERE a.grp < 5 GROUP BY a.grp;
VACUUM;
PRAGMA integrity_check;
