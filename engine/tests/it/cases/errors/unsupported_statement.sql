CREATE TABLE out WITH (connector = 'stdout');
DROP TABLE out;
-- error: 2:1: expected CREATE TABLE, CREATE VIEW, INSERT INTO or SET, found DROP
