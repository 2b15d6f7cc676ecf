// The app's one Custom UI bundle: the view follows the module the platform shows it in
// (`moduleKey` of `view.getContext()`).

import { render } from 'preact';

import { getContext } from './api.js';
import { ErrorMessage } from './components.jsx';
import { setLocale, warmFormats } from './format.js';
import { ApprovalPanel } from './views/panel.jsx';
import { MyApprovals } from './views/my-approvals.jsx';
import { SpaceSettings } from './views/settings.jsx';
import './styles.css';

const VIEWS = {
  'approval-status': ApprovalPanel,
  'my-approvals': MyApprovals,
  'approval-settings': SpaceSettings,
};

const root = document.getElementById('root');

const asked = getContext();
// The request is on its way: make the date formatters while it travels.
warmFormats();
asked.then(
  (context) => {
    setLocale(context.locale, context.timezone);
    if (context.locale) document.documentElement.lang = context.locale;
    const View = VIEWS[context.moduleKey];
    if (!View) {
      const error = {
        code: null,
        message: `This app has no view for the module "${context.moduleKey}".`,
      };
      render(<ErrorMessage error={error} />, root);
      return;
    }
    render(<View context={context} />, root);
  },
  (e) => {
    const error = { code: null, message: `The page could not tell the app where it is shown: ${e && e.message}` };
    render(<ErrorMessage error={error} />, root);
  },
);
