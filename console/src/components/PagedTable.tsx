import type { ComponentChildren, VNode } from 'preact';
import type { Paged } from '../hooks';
import { ErrorNotice } from './ErrorNotice';
import { Loading } from './Loading';
import { Pager } from './Pager';

/**
 * A list read one page at a time (usePaged) as a table: the read error, the first load, the
 * message for an empty list, the page's rows and the pager.
 */
export function PagedTable<T>({
  page,
  noun,
  caption,
  empty,
  columns,
  row,
  pagerLabel,
  tableClass = '',
}: {
  page: Paged<T>;
  /** The list in "The … could not be read" and "Loading the …". */
  noun: string;
  /** For screen readers, with the page number after it. */
  caption: string;
  /** Shown when the first page has no rows (an empty later page does not make the list empty). */
  empty?: ComponentChildren;
  /** The column headers, in order. */
  columns: ComponentChildren[];
  /** An item's row, with its key. */
  row: (item: T, index: number) => VNode;
  /** The pager's label; without one the list shows its first page only (no pager). */
  pagerLabel?: string;
  /** Classes of the table besides `striped` (a page's own styles). */
  tableClass?: string;
}) {
  const rows = page.data?.items ?? [];
  return (
    <>
      <ErrorNotice error={page.error} title={`The ${noun} could not be read`} />
      {page.loading && !page.data ? <Loading what={`Loading the ${noun}`} /> : null}
      {page.data && rows.length === 0 && page.pageNumber === 1 ? empty : null}
      {rows.length > 0 ? (
        <div class="overflow-auto">
          <table class={tableClass ? `striped ${tableClass}` : 'striped'} aria-busy={page.loading}>
            <caption class="visually-hidden">
              {caption}, page {page.pageNumber}
            </caption>
            <thead>
              <tr>
                {columns.map((column, i) => (
                  <th scope="col" key={i}>
                    {column}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>{rows.map(row)}</tbody>
          </table>
        </div>
      ) : null}
      {pagerLabel ? (
        <Pager label={pagerLabel} pageNumber={page.pageNumber} hasPrevious={page.hasPrevious} hasNext={page.hasNext} onPrevious={page.previous} onNext={page.next} />
      ) : null}
    </>
  );
}
