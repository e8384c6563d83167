/** "Previous page" / "Next page" over the API's cursors (see usePaged). */
export function Pager({
  pageNumber,
  hasPrevious,
  hasNext,
  onPrevious,
  onNext,
  label = 'Pages',
}: {
  pageNumber: number;
  hasPrevious: boolean;
  hasNext: boolean;
  onPrevious: () => void;
  onNext: () => void;
  label?: string;
}) {
  if (!hasPrevious && !hasNext) return null;
  return (
    <nav aria-label={label} class="pager">
      <button type="button" class="secondary" disabled={!hasPrevious} onClick={onPrevious}>
        Previous page
      </button>
      <span aria-live="polite">Page {pageNumber}</span>
      <button type="button" class="secondary" disabled={!hasNext} onClick={onNext}>
        Next page
      </button>
    </nav>
  );
}
