CREATE TABLE outbox_messages (
	id SERIAL NOT NULL, 
	event_id VARCHAR(64) NOT NULL, 
	topic VARCHAR(200) NOT NULL, 
	key VARCHAR(200) NOT NULL, 
	event_type VARCHAR(100) NOT NULL, 
	headers TEXT NOT NULL, 
	value BYTEA NOT NULL, 
	traceparent VARCHAR(64), 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	claimed_by VARCHAR(200), 
	claimed_until TIMESTAMP WITH TIME ZONE, 
	sent_at TIMESTAMP WITH TIME ZONE, 
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
	processed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (consumer_group, event_id)
);

CREATE TABLE dead_letters (
	id SERIAL NOT NULL, 
	consumer_group VARCHAR(200) NOT NULL, 
	topic VARCHAR(200) NOT NULL, 
	partition INTEGER NOT NULL, 
	"offset" INTEGER NOT NULL, 
	key VARCHAR(200), 
	event_id VARCHAR(64), 
	event_type VARCHAR(100), 
	headers TEXT NOT NULL, 
	value BYTEA, 
	error TEXT NOT NULL, 
	attempts INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	replayed_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_dead_letter UNIQUE (consumer_group, topic, partition, "offset")
);

CREATE TABLE member_directory (
	member_id VARCHAR(100) NOT NULL, 
	name VARCHAR(300) NOT NULL, 
	kind VARCHAR(50) NOT NULL, 
	is_co_chair BOOLEAN NOT NULL, 
	active BOOLEAN NOT NULL, 
	version INTEGER NOT NULL, 
	focal_points JSON NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (member_id)
);

CREATE TABLE source_events (
	event_id VARCHAR(100) NOT NULL, 
	event_type VARCHAR(100) NOT NULL, 
	event_version INTEGER NOT NULL, 
	subject VARCHAR(200) NOT NULL, 
	occurred_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	data JSON NOT NULL, 
	PRIMARY KEY (event_id)
);

CREATE TABLE alert_states (
	alert_id VARCHAR(100) NOT NULL, 
	version INTEGER NOT NULL, 
	status VARCHAR(40) NOT NULL, 
	severity VARCHAR(20) NOT NULL, 
	raised_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	affected_members JSON NOT NULL, 
	senior_officials_notified BOOLEAN NOT NULL, 
	event_id VARCHAR(100) NOT NULL, 
	event_type VARCHAR(100) NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (alert_id)
);

CREATE INDEX ix_alert_states_raised_at ON alert_states (raised_at);

CREATE TABLE subscriptions (
	id VARCHAR(64) NOT NULL, 
	member_id VARCHAR(100), 
	created_by VARCHAR(300) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	channel VARCHAR(20) NOT NULL, 
	email VARCHAR(320), 
	url TEXT, 
	digest VARCHAR(20) NOT NULL, 
	event_types JSON NOT NULL, 
	severities JSON NOT NULL, 
	area_numbers JSON NOT NULL, 
	item_numbers JSON NOT NULL, 
	member_ids JSON NOT NULL, 
	secrets JSON NOT NULL, 
	enabled BOOLEAN NOT NULL, 
	disabled_reason VARCHAR(500), 
	disabled_at TIMESTAMP WITH TIME ZONE, 
	version INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_subscriptions_member_id ON subscriptions (member_id);

CREATE TABLE deliveries (
	id VARCHAR(64) NOT NULL, 
	source_event_id VARCHAR(100) NOT NULL, 
	event_type VARCHAR(100) NOT NULL, 
	channel VARCHAR(20) NOT NULL, 
	recipient VARCHAR(320) NOT NULL, 
	member_id VARCHAR(100), 
	subscription_id VARCHAR(64), 
	alert_id VARCHAR(100), 
	severity VARCHAR(20), 
	reason VARCHAR(30) NOT NULL, 
	acknowledge_link BOOLEAN NOT NULL, 
	status VARCHAR(30) NOT NULL, 
	attempt_count INTEGER NOT NULL, 
	attempts_in_round INTEGER NOT NULL, 
	next_attempt_at TIMESTAMP WITH TIME ZONE, 
	claimed_by VARCHAR(200), 
	claimed_until TIMESTAMP WITH TIME ZONE, 
	last_status_code INTEGER, 
	last_error TEXT, 
	operator_warning BOOLEAN NOT NULL, 
	digest_delivery_id VARCHAR(64), 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	delivered_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_delivery_once UNIQUE (source_event_id, recipient, channel)
);

CREATE INDEX ix_deliveries_event_type ON deliveries (event_type);

CREATE INDEX ix_deliveries_member_id ON deliveries (member_id);

CREATE INDEX ix_deliveries_due ON deliveries (status, next_attempt_at);

CREATE INDEX ix_deliveries_listing ON deliveries (created_at, id);

CREATE INDEX ix_deliveries_subscription_id ON deliveries (subscription_id);

CREATE INDEX ix_deliveries_alert_id ON deliveries (alert_id);

CREATE TABLE delivery_attempts (
	id SERIAL NOT NULL, 
	delivery_id VARCHAR(64) NOT NULL, 
	number INTEGER NOT NULL, 
	attempted_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	succeeded BOOLEAN NOT NULL, 
	status_code INTEGER, 
	latency_ms INTEGER, 
	error TEXT, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_attempt_number UNIQUE (delivery_id, number)
);

CREATE INDEX ix_delivery_attempts_delivery_id ON delivery_attempts (delivery_id);

CREATE TABLE inbox_items (
	id SERIAL NOT NULL, 
	owner VARCHAR(320) NOT NULL, 
	delivery_id VARCHAR(64) NOT NULL, 
	event_type VARCHAR(100) NOT NULL, 
	title VARCHAR(500) NOT NULL, 
	body TEXT NOT NULL, 
	severity VARCHAR(20), 
	alert_id VARCHAR(100), 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	read_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	UNIQUE (delivery_id)
);

CREATE INDEX ix_inbox_owner ON inbox_items (owner, id);

CREATE TABLE idempotency_records (
	scope VARCHAR(300) NOT NULL, 
	key VARCHAR(255) NOT NULL, 
	fingerprint VARCHAR(64) NOT NULL, 
	status_code INTEGER, 
	response_body TEXT, 
	response_headers TEXT, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (scope, key)
);

CREATE TABLE audit_records (
	id SERIAL NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	actor_subject VARCHAR(300) NOT NULL, 
	actor_member VARCHAR(100), 
	actor_roles VARCHAR(200) NOT NULL, 
	action VARCHAR(100) NOT NULL, 
	resource_type VARCHAR(50) NOT NULL, 
	resource_id VARCHAR(100), 
	outcome VARCHAR(20) NOT NULL, 
	source VARCHAR(100), 
	trace_id VARCHAR(32), 
	details TEXT, 
	PRIMARY KEY (id)
);

CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit records are append-only'; END; $$ LANGUAGE plpgsql;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
