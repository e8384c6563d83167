// Stub: replaced by the page's owner. Routes: /workflows, /workflows/new, /workflows/:id,
// /workflows/:id/executions/:executionId (see app.tsx).
export function WorkflowList(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>Workflows</h1>
    </section>
  );
}

export function WorkflowNew(_props: Record<string, unknown>) {
  return (
    <section>
      <h1>New workflow</h1>
    </section>
  );
}

export function WorkflowDetail(_props: { id?: string }) {
  return (
    <section>
      <h1>Workflow</h1>
    </section>
  );
}

export function ExecutionDetail(_props: { id?: string; executionId?: string }) {
  return (
    <section>
      <h1>Execution</h1>
    </section>
  );
}
