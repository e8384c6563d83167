import type { ComponentChildren } from 'preact';
import { useArea } from '../session';

/**
 * A link inside the console: `to` is relative to the area's base (`/console` or
 * `/console/portal`), so the same page works in both; the router handles the click.
 */
export function Link(props: {
  to: string;
  children: ComponentChildren;
  class?: string;
  role?: 'button';
  'aria-current'?: 'page';
  'aria-label'?: string;
}) {
  const { base } = useArea();
  const { to, children, ...rest } = props;
  return (
    <a href={`${base}${to}`} {...rest}>
      {children}
    </a>
  );
}
