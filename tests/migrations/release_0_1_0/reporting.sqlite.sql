CREATE TABLE outbox_messages (
	id INTEGER NOT NULL, 
	event_id VARCHAR(64) NOT NULL, 
	topic VARCHAR(200) NOT NULL, 
	"key" VARCHAR(200) NOT NULL, 
	event_type VARCHAR(100) NOT NULL, 
	headers TEXT NOT NULL, 
	value BLOB NOT NULL, 
	traceparent VARCHAR(64), 
	created_at DATETIME NOT NULL, 
	claimed_by VARCHAR(200), 
	claimed_until DATETIME, 
	sent_at DATETIME, 
	attempts INTEGER NOT NULL, 
	last_error TEXT, 
	PRIMARY KEY (id), 
	UNIQUE (event_id)
);

CREATE INDEX ix_outbox_pending ON outbox_messages (sent_at, id);

CREATE TABLE inbox_entries (
	consumer_group VARCHAR(200) NOT NULL, 
	event_id VARCHAR(64) NOT NULL, 
	event_type VARCHAR(100) NOT NULL, 
	topic VARCHAR(200) NOT NULL, 
	partition INTEGER NOT NULL, 
	"offset" INTEGER NOT NULL, 
	processed_at DATETIME NOT NULL, 
	PRIMARY KEY (consumer_group, event_id)
);

CREATE TABLE dead_letters (
	id INTEGER NOT NULL, 
	consumer_group VARCHAR(200) NOT NULL, 
	topic VARCHAR(200) NOT NULL, 
	partition INTEGER NOT NULL, 
	"offset" INTEGER NOT NULL, 
	"key" VARCHAR(200), 
	event_id VARCHAR(64), 
	event_type VARCHAR(100), 
	headers TEXT NOT NULL, 
	value BLOB, 
	error TEXT NOT NULL, 
	attempts INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	replayed_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_dead_letter UNIQUE (consumer_group, topic, partition, "offset")
);

CREATE TABLE event_tallies (
	event_type VARCHAR(100) NOT NULL, 
	stream VARCHAR(50) NOT NULL, 
	count INTEGER NOT NULL, 
	last_event_at DATETIME NOT NULL, 
	PRIMARY KEY (event_type)
);
