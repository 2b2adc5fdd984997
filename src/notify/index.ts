// The public face of notifications: the daemon subsystem, the channel builder (for `bulwark
// notify test`) and the incident catalogue.
export { createNotify, NotifySubsystem, routeMatches } from './subsystem.js';
export { buildChannel, signBody, type Channel } from './channels.js';
export { INCIDENT_KINDS, type Incident } from './incidents.js';
export { toDocument, type NotificationDocument } from './message.js';
export { Grouper, type Notification } from './grouper.js';
