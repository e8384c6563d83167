/** A busy indicator that says what is loading (Pico renders aria-busy as a spinner). */
export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p aria-busy="true" role="status">
      {what}…
    </p>
  );
}
