-- The workflow runner owns every execution and the read-only projection of room data the
-- bindings answer from (rooms and users from room events, KV and files from room-state).

CREATE TABLE executions (
    id              uuid PRIMARY KEY,          -- run_id: UUIDv5(workflow id, event id)
    workflow_id     uuid NOT NULL,
    organization_id uuid NOT NULL,
    version         integer NOT NULL,
    event_id        text NOT NULL,
    event           text NOT NULL,
    status          text NOT NULL CHECK (status IN ('running', 'success', 'error', 'timeout')),
    started_at      timestamptz,
    duration_ms     integer,
    result          jsonb,
    error           jsonb,                      -- {"message", "stack"}
    logs            jsonb NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX executions_log_idx ON executions (workflow_id, created_at DESC, id DESC);

CREATE TABLE rooms (
    organization_id text NOT NULL,
    room_id         text NOT NULL,
    data            jsonb NOT NULL,            -- the latest CollabKitRoom seen, no tokens
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, room_id)
);

CREATE TABLE room_users (
    organization_id text NOT NULL,
    room_id         text NOT NULL,
    user_id         text NOT NULL,
    data            jsonb NOT NULL,            -- the latest user seen, token stripped
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, room_id, user_id)
);

CREATE TABLE kv_entries (
    organization_id text NOT NULL,
    room_id         text NOT NULL,
    store           text NOT NULL,
    key             text NOT NULL,
    value           jsonb NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, room_id, store, key)
);

CREATE TABLE files (
    organization_id text NOT NULL,
    room_id         text NOT NULL,
    path            text NOT NULL,
    metadata        jsonb NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, room_id, path)
);
