export { Loading } from './Loading';
export { ErrorNotice } from './ErrorNotice';
export { Pager } from './Pager';
export { CopyButton } from './CopyButton';
export { JsonView, prettyJson } from './JsonView';
export { Time, relativeTime } from './Time';
export { ConfirmButton } from './ConfirmButton';
export { Chart, type ChartSeries } from './Chart';
export { Link } from './Link';
