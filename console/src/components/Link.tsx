import type { ComponentChildren } from 'preact';
import { useArea } from '../session';

/**
 * A link inside the console: `to` is relative to the area's base (`/console` or
 * `/console/portal`), so the same page works in both; the router handles the click.
 */
export function Link({ to, children, ...rest }: { to: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' }) {
  const { base } = useArea();
  return (
    <a href={`${base}${to}`} {...rest}>
      {children}
    </a>
  );
}
