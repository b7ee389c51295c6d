"""The operator console: server-rendered pages at `/`, live updates over one browser stream.

A page is a route module in `routes/` (an `APIRouter(route_class=ConsoleRoute)`, listed in
`setup.ROUTERS`) rendering a template that extends `base.html`. Routes take `ViewerDep` to
read, `OperatorDep` / `AdminDep` to change things (those also check the CSRF token), and call
subsystem services directly (never `cloud.api`). Every `ApiError` they raise becomes a message
on the page, or a JSON `detail` for the page's own fetches. Page scripts get the live events
as the `visant:event` DOM event (static/console.js). docs/console.md is the user's guide.
"""
