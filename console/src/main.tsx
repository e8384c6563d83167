import { render } from 'preact';
import '@picocss/pico/css/pico.min.css';
import './styles.css';
import { App } from './app';
import { applyStoredTheme } from './theme';

applyStoredTheme();
render(<App />, document.getElementById('app')!);
