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

CREATE TABLE consultation_alerts (
	id VARCHAR(36) NOT NULL, 
	version INTEGER NOT NULL, 
	status VARCHAR(30) NOT NULL, 
	situation_type VARCHAR(40) NOT NULL, 
	title VARCHAR(160) NOT NULL, 
	description TEXT NOT NULL, 
	severity VARCHAR(10) NOT NULL, 
	urgency VARCHAR(10) NOT NULL, 
	certainty VARCHAR(10) NOT NULL, 
	sensitivity VARCHAR(10) NOT NULL, 
	raised_by_member VARCHAR(50) NOT NULL, 
	raised_by_subject VARCHAR(300) NOT NULL, 
	raised_by_name VARCHAR(300), 
	affected_members JSON, 
	location JSON, 
	people_affected JSON, 
	requested_actions JSON, 
	dedup_key VARCHAR(200) NOT NULL, 
	open_dedup_key VARCHAR(200), 
	raised_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	acknowledged_at TIMESTAMP WITH TIME ZONE, 
	acknowledged_by JSON, 
	convened_at TIMESTAMP WITH TIME ZONE, 
	resolved_at TIMESTAMP WITH TIME ZONE, 
	closed_at TIMESTAMP WITH TIME ZONE, 
	status_before_close VARCHAR(30), 
	resolution_summary TEXT, 
	withdrawal_reason TEXT, 
	escalation_level INTEGER NOT NULL, 
	escalation_plan INTEGER NOT NULL, 
	escalation_anchor_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_alert_open_dedup UNIQUE (raised_by_member, open_dedup_key)
);

CREATE INDEX ix_alert_raised ON consultation_alerts (raised_at, id);

CREATE INDEX ix_alert_updated ON consultation_alerts (updated_at, id);

CREATE INDEX ix_consultation_alerts_status ON consultation_alerts (status);

CREATE INDEX ix_consultation_alerts_raised_by_member ON consultation_alerts (raised_by_member);

CREATE TABLE alert_affected_members (
	alert_id VARCHAR(36) NOT NULL, 
	member_id VARCHAR(50) NOT NULL, 
	PRIMARY KEY (alert_id, member_id)
);

CREATE INDEX ix_alert_affected_members_member_id ON alert_affected_members (member_id);

CREATE TABLE alert_timeline (
	id SERIAL NOT NULL, 
	alert_id VARCHAR(36) NOT NULL, 
	version INTEGER NOT NULL, 
	kind VARCHAR(40) NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	actor_subject VARCHAR(300) NOT NULL, 
	actor_member VARCHAR(50), 
	actor_name VARCHAR(300), 
	details JSON, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_timeline_version UNIQUE (alert_id, version)
);

CREATE INDEX ix_alert_timeline_alert_id ON alert_timeline (alert_id);

CREATE TABLE escalation_timers (
	id VARCHAR(36) NOT NULL, 
	alert_id VARCHAR(36) NOT NULL, 
	plan INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	due_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	notify_senior_officials BOOLEAN NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	fired_at TIMESTAMP WITH TIME ZONE, 
	cancelled_at TIMESTAMP WITH TIME ZONE, 
	claimed_by VARCHAR(200), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_escalation_timers_pending ON escalation_timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;

CREATE INDEX ix_escalation_timers_alert_id ON escalation_timers (alert_id);

CREATE TABLE used_link_tokens (
	token_id VARCHAR(100) NOT NULL, 
	purpose VARCHAR(100) NOT NULL, 
	subject VARCHAR(100) NOT NULL, 
	recipient VARCHAR(300) NOT NULL, 
	used_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (token_id)
);

CREATE TABLE consultation_members (
	member_id VARCHAR(50) NOT NULL, 
	name VARCHAR(300) NOT NULL, 
	kind VARCHAR(50) NOT NULL, 
	is_co_chair BOOLEAN NOT NULL, 
	active BOOLEAN NOT NULL, 
	focal_points JSON, 
	version INTEGER NOT NULL, 
	PRIMARY KEY (member_id)
);

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
