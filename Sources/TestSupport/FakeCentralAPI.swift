import Foundation

/// A fake of the central API (DESIGN.md, "Central API (client side)") on 127.0.0.1, for tests.
///
/// It implements the HTTP contract on its own, from the design and not from UpgradeKit's types,
/// so a client that uses a wrong path, forgets the token or the Idempotency-Key, posts a step
/// before it knows its upgrade id, or retries a report under a new key is caught here instead of
/// agreed with. Faults are produced on the wire by `LoopbackHTTPServer`: the client sees what a
/// broken API really looks like (a status, a closed socket, a late or cut-short answer).
///
/// Everything is behind one lock: the server's thread answers requests while the test's thread
/// configures the fake and reads what it saw.
public final class FakeCentralAPI: @unchecked Sendable {
    /// Which requests a fault applies to. `reports` covers every POST; `any` every request.
    public enum Route: Sendable, Hashable {
        case rollouts, releases, downloads, reports, any
    }

    /// A way for the API to misbehave. Unless said otherwise, a faulted request is not
    /// processed: no report is recorded, no id assigned.
    public enum Fault: Sendable {
        /// This status with a short text body (500, 502, 503...).
        case status(Int)
        /// 429 with this `Retry-After` value (seconds or an HTTP date, sent as given).
        case tooManyRequests(retryAfter: String)
        /// Processed normally, answered after this delay: a client that gives up first has still
        /// had its report recorded, as with a real overloaded server.
        case slow(seconds: Double)
        /// Reads the request, closes without answering.
        case dropConnection
        /// Processed (recorded, id assigned), then closed before the answer: the client must
        /// retry under the same Idempotency-Key and gets the answer it missed.
        case acceptThenDrop
        /// 200 with the truncated JSON body `{"id": `.
        case malformedJSON
        /// Processed normally; announces the full Content-Length, sends half the body, closes.
        /// Meant for downloads.
        case truncatedBody
    }

    /// A report as the fake accepted it.
    public struct Report: Sendable, Equatable {
        public var method: String
        /// The request target as sent, e.g. `/api/plugins/upgrades/upg-1/steps`.
        public var path: String
        public var idempotencyKey: String
        /// The top-level members of the JSON body; strings as they are, anything else as JSON
        /// (`42`, `true`, `null`, `{"a":1}` with sorted keys), so tests compare plain strings.
        public var body: [String: String]
        public var rawBody: Data
        /// The id the answer carried (`upg-N`, `bkp-N`, `rb-N`), if any.
        public var assignedID: String?

        public init(
            method: String, path: String, idempotencyKey: String, body: [String: String],
            rawBody: Data, assignedID: String?
        ) {
            self.method = method
            self.path = path
            self.idempotencyKey = idempotencyKey
            self.body = body
            self.rawBody = rawBody
            self.assignedID = assignedID
        }
    }

    private let state: CentralAPIState
    // The server's handler holds only `state`, never `self`: dropping the last reference to the
    // fake then stops the server (LoopbackHTTPServer stops in deinit).
    private let server: LoopbackHTTPServer

    /// Starts listening on a free port of 127.0.0.1. Requests must carry
    /// `Authorization: Bearer <token>` exactly (downloads excepted).
    public init(token: String) throws {
        let state = CentralAPIState(token: token)
        self.state = state
        server = try LoopbackHTTPServer { request in state.respond(to: request) }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    public var baseURL: String { server.baseURL }

    /// Stops the server, interrupting any delay in progress. Idempotent.
    public func stop() { server.stop() }

    // MARK: What it serves

    /// How `GET /api/plugins/rollouts/{plugin}` wraps a rollout.
    public enum RolloutShape: Sendable {
        /// `{"rollout": {...}}`, as the seeds document the real API (115ter). The default.
        case wrapped
        /// The rollout object alone, as earlier fakes served it.
        case bare
    }

    /// What is served for one plugin's rollout.
    enum RolloutAnswer: @unchecked Sendable {
        case object([String: Any])
        /// `{"rollout": null}`: the seeds' answer when no rollout is active.
        case null
    }

    /// The shape of every rollout answer from now on (rollouts already set included).
    public func setRolloutShape(_ shape: RolloutShape) {
        state.locked { $0.rolloutShape = shape }
    }

    /// The rollout served at `GET /api/plugins/rollouts/{plugin}`, in the current `RolloutShape`;
    /// nil answers 404. An object JSONSerialization cannot encode is served as a 500 naming it.
    public func setRollout(plugin: String, _ rollout: [String: Any]?) {
        state.locked { $0.rollouts[plugin] = rollout.map { .object($0) } }
    }

    /// Answers `{"rollout": null}` for this plugin: the seeds' "no active rollout".
    public func setNoActiveRollout(plugin: String) {
        state.locked { $0.rollouts[plugin] = .null }
    }

    /// The metadata served at `GET /api/plugins/releases/{plugin}/{version}`; nil answers 404.
    public func setRelease(plugin: String, version: String, _ metadata: [String: Any]?) {
        let response = metadata.map { LoopbackHTTPServer.Response.json(200, $0) }
        state.locked { $0.releases[ReleaseKey(plugin: plugin, version: version)] = response }
    }

    /// Serves `data` at `GET /downloads/<name>` and returns its absolute URL (the name
    /// percent-encoded as one path component).
    @discardableResult
    public func serveFile(name: String, data: Data) -> String {
        state.locked { $0.files[name] = data }
        let component = name.addingPercentEncoding(withAllowedCharacters: Self.componentAllowed) ?? name
        return baseURL + "/downloads/" + component
    }

    private static let componentAllowed = CharacterSet.urlPathAllowed
        .subtracting(CharacterSet(charactersIn: "/"))

    // MARK: Faults

    /// Queues `fault` for the next `times` requests on `route`. Per request, the first queued
    /// fault of its own route is used, else the first queued `.any` fault, else a persistent one.
    public func inject(_ fault: Fault, on route: Route, times: Int = 1) {
        precondition(times >= 0, "inject: times must not be negative, got \(times)")
        state.locked {
            $0.queuedFaults[route, default: []].append(contentsOf: repeatElement(fault, count: times))
        }
    }

    /// Every request on `route` fails with `fault` until cleared (an API that is down or broken
    /// for a while); nil clears it. Queued faults still come first.
    public func setPersistentFault(_ fault: Fault?, on route: Route) {
        state.locked { $0.persistentFaults[route] = fault }
    }

    /// Forgets queued and persistent faults on every route.
    public func clearFaults() {
        state.locked {
            $0.queuedFaults.removeAll()
            $0.persistentFaults.removeAll()
        }
    }

    // MARK: What it saw

    /// Every request, in arrival order, faulted or not (recorded before it is answered).
    public var requests: [RecordedRequest] { server.requests }

    /// Reports accepted, once each (deduplicated by Idempotency-Key), in the order first accepted.
    public var reports: [Report] { state.locked { $0.reports } }

    /// POSTs that came again with an Idempotency-Key already accepted, with the same request
    /// (retries): each got the first answer again and was not recorded again.
    public var duplicateDeliveries: Int { state.locked { $0.duplicateDeliveries } }

    /// POSTs that reused an accepted Idempotency-Key for a different path or body (answered 422).
    /// A correct client never does this.
    public var idempotencyConflicts: Int { state.locked { $0.idempotencyConflicts } }

    /// Requests answered 401 (no or wrong bearer token); none of them was processed.
    public var unauthorizedRequests: Int { state.locked { $0.unauthorizedRequests } }

    /// Download requests that carried an `Authorization` header: the token must not be sent to
    /// a download origin (in production a CDN, not the API).
    public var downloadsWithAuthorization: Int { state.locked { $0.downloadsWithAuthorization } }

    /// POSTs refused with 400 (no JSON content type, no Idempotency-Key, body not a JSON object).
    public var badRequests: Int { state.locked { $0.badRequests } }

    /// Waits until at least `count` reports were accepted or `timeout` seconds passed, for
    /// clients that report in the background. Returns whether the count was reached.
    public func waitForReports(count: Int, timeout: Double) -> Bool {
        state.waitForReports(count: count, deadline: Date(timeIntervalSinceNow: timeout))
    }
}

