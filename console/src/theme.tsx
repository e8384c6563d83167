// Light/dark through Pico's data-theme on <html>; the choice (not a secret) is remembered in
// localStorage, and without one the system's preference applies.
import { useState } from 'preact/hooks';

const THEME_KEY = 'roomhooks.console.theme';
type Theme = 'light' | 'dark';

function systemTheme(): Theme {
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function storedTheme(): Theme | null {
  try {
    const value = localStorage.getItem(THEME_KEY);
    return value === 'light' || value === 'dark' ? value : null;
  } catch {
    return null;
  }
}

/** Applies the remembered theme before the first render. */
export function applyStoredTheme(): void {
  const theme = storedTheme();
  if (theme) document.documentElement.dataset.theme = theme;
}

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(() => storedTheme() ?? systemTheme());
  const other: Theme = theme === 'dark' ? 'light' : 'dark';
  const toggle = () => {
    document.documentElement.dataset.theme = other;
    try {
      localStorage.setItem(THEME_KEY, other);
    } catch {
      // not remembered: fine
    }
    setTheme(other);
  };
  return (
    <button type="button" class="secondary outline theme-toggle" aria-label={`Switch to ${other} theme`} onClick={toggle}>
      {other === 'dark' ? 'Dark' : 'Light'}
    </button>
  );
}
