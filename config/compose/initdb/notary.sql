-- The Notary services' databases and users (run once by mariadb on an empty data volume). The
-- tables are made by the services' own migrations when they start. Each service can reach only
-- its own database. Passwordless users are reachable only on the compose network; give them
-- passwords (and put them in the db_url of config/compose/notary/*.json) for production.
CREATE DATABASE IF NOT EXISTS `notaryserver`;
CREATE USER IF NOT EXISTS 'server'@'%';
GRANT ALL PRIVILEGES ON `notaryserver`.* TO 'server'@'%';

CREATE DATABASE IF NOT EXISTS `notarysigner`;
CREATE USER IF NOT EXISTS 'signer'@'%';
GRANT ALL PRIVILEGES ON `notarysigner`.* TO 'signer'@'%';
