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

CREATE TABLE members (
	member_id VARCHAR(20) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	kind VARCHAR(40) NOT NULL, 
	is_co_chair BOOLEAN NOT NULL, 
	active BOOLEAN NOT NULL, 
	version INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (member_id)
);

CREATE TABLE activities (
	id VARCHAR(36) NOT NULL, 
	version INTEGER NOT NULL, 
	strategy_id VARCHAR(50) NOT NULL, 
	title VARCHAR(200) NOT NULL, 
	description TEXT NOT NULL, 
	items JSON NOT NULL, 
	areas JSON NOT NULL, 
	type VARCHAR(40) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	lead_member VARCHAR(20) NOT NULL, 
	participants JSON NOT NULL, 
	planned_start DATE, 
	planned_end DATE, 
	actual_start DATE, 
	actual_end DATE, 
	window_start DATE, 
	window_end DATE, 
	countries JSON NOT NULL, 
	outputs JSON NOT NULL, 
	tags JSON NOT NULL, 
	documents JSON NOT NULL, 
	related_alert_id VARCHAR(100), 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	deleted BOOLEAN NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_activities_status ON activities (status);

CREATE INDEX ix_activities_deleted ON activities (deleted);

CREATE INDEX ix_activities_listing ON activities (created_at, id);

CREATE INDEX ix_activities_type ON activities (type);

CREATE INDEX ix_activities_window ON activities (window_start, window_end);

CREATE INDEX ix_activities_lead_member ON activities (lead_member);

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

CREATE TABLE focal_points (
	focal_point_id VARCHAR(64) NOT NULL, 
	member_id VARCHAR(20) NOT NULL, 
	position INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	email VARCHAR(254) NOT NULL, 
	role VARCHAR(40) NOT NULL, 
	webhook_url VARCHAR(2100), 
	active BOOLEAN NOT NULL, 
	PRIMARY KEY (focal_point_id), 
	FOREIGN KEY(member_id) REFERENCES members (member_id)
);

CREATE INDEX ix_focal_points_member ON focal_points (member_id, position);

CREATE TABLE activity_index (
	activity_id VARCHAR(36) NOT NULL, 
	kind VARCHAR(10) NOT NULL, 
	value VARCHAR(50) NOT NULL, 
	PRIMARY KEY (activity_id, kind, value), 
	FOREIGN KEY(activity_id) REFERENCES activities (id)
);

CREATE INDEX ix_activity_index_lookup ON activity_index (kind, value);

CREATE TABLE activity_versions (
	activity_id VARCHAR(36) NOT NULL, 
	version INTEGER NOT NULL, 
	action VARCHAR(20) NOT NULL, 
	snapshot JSON NOT NULL, 
	changes JSON NOT NULL, 
	actor_subject VARCHAR(300) NOT NULL, 
	actor_member VARCHAR(100), 
	actor_name VARCHAR(200), 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	trace_id VARCHAR(32), 
	PRIMARY KEY (activity_id, version), 
	FOREIGN KEY(activity_id) REFERENCES activities (id)
);
