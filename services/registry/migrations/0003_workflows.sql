-- Workflows: customer code run on events. Every code change is a new version; each version's
-- code is kept so a run request for version N runs exactly that code.

CREATE TABLE workflows (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name            text NOT NULL,
    events          text[] NOT NULL,
    room_id         text,
    enabled         boolean NOT NULL DEFAULT true,
    language        text NOT NULL CHECK (language IN ('js', 'ts')),
    version         integer NOT NULL DEFAULT 1,
    revision        bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX workflows_account_created_idx
    ON workflows (organization_id, created_at DESC, id DESC);

CREATE TABLE workflow_versions (
    workflow_id uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    language    text NOT NULL CHECK (language IN ('js', 'ts')),
    code        text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (workflow_id, version)
);
