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

    /// The rollout served at `GET /api/plugins/rollouts/{plugin}`; nil answers 404. An object
    /// JSONSerialization cannot encode is served as a 500 naming it.
    public func setRollout(plugin: String, _ rollout: [String: Any]?) {
        let response = rollout.map { LoopbackHTTPServer.Response.json(200, $0) }
        state.locked { $0.rollouts[plugin] = response }
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

private struct ReleaseKey: Hashable {
    let plugin: String
    let version: String
}

/// A report accepted under an Idempotency-Key, kept to answer its retries identically.
private struct AcceptedRequest {
    let path: String
    /// The body re-encoded with sorted keys: a retry may order members differently (a process
    /// restarted after a crash encodes a dictionary in another order) and is still the same.
    let canonicalBody: Data
    let response: LoopbackHTTPServer.Response
}

/// The fake's state and behaviour, shared by the test's thread and the server's thread, all
/// under `condition` (a lock that can also wake `waitForReports`).
private final class CentralAPIState: @unchecked Sendable {
    typealias Response = LoopbackHTTPServer.Response
    typealias Route = FakeCentralAPI.Route
    typealias Fault = FakeCentralAPI.Fault

    let token: String
    private let condition = NSCondition()

    var rollouts: [String: Response] = [:]
    var releases: [ReleaseKey: Response] = [:]
    var files: [String: Data] = [:]
    var queuedFaults: [Route: [Fault]] = [:]
    var persistentFaults: [Route: Fault] = [:]

    var reports: [FakeCentralAPI.Report] = [] {
        didSet { condition.broadcast() }
    }
    var duplicateDeliveries = 0
    var idempotencyConflicts = 0
    var unauthorizedRequests = 0
    var downloadsWithAuthorization = 0
    var badRequests = 0

    private var accepted: [String: AcceptedRequest] = [:]
    private var upgradeIDs: [String] = []
    private var backupIDs: [String] = []
    private var rollbackIDs: [String] = []

    init(token: String) { self.token = token }

    func locked<T>(_ body: (CentralAPIState) -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body(self)
    }

    func waitForReports(count: Int, deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while reports.count < count {
            if !condition.wait(until: deadline) { return reports.count >= count }
        }
        return true
    }

    // MARK: Answering (on the server's thread)

    func respond(to request: RecordedRequest) -> Response {
        condition.lock()
        defer { condition.unlock() }
        let target = request.path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let rawPath = target.first.map(String.init) ?? ""
        let rawComponents = rawPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            .map(String.init)
        let route = Self.route(method: request.method, rawComponents: rawComponents)
        if route == .downloads, request.header("authorization") != nil {
            // Counted whatever the answer: the token has left the client either way.
            downloadsWithAuthorization += 1
        }

        switch takeFault(for: route) {
        case nil:
            return process(request, route: route, rawPath: rawPath)
        case .status(let status):
            return .text(status, "fake central API: injected status \(status)")
        case .tooManyRequests(let retryAfter):
            var response = Response.json(429, ["error": "too many requests"])
            response.headers.append(("Retry-After", retryAfter))
            return response
        case .slow(let seconds):
            return .delayed(seconds, process(request, route: route, rawPath: rawPath))
        case .dropConnection:
            return .dropConnection
        case .acceptThenDrop:
            _ = process(request, route: route, rawPath: rawPath)
            return .dropConnection
        case .malformedJSON:
            return Response(status: 200, headers: [("Content-Type", "application/json")],
                            body: Data(#"{"id": "#.utf8))
        case .truncatedBody:
            var response = process(request, route: route, rawPath: rawPath)
            response.behaviour = .truncated(afterBytes: response.body.count / 2)
            return response
        }
    }

    /// Classified from the raw path: the fixed segments need no decoding, and a request whose
    /// encoding is broken must still meet the faults of its route.
    private static func route(method: String, rawComponents: [String]) -> Route? {
        if method == "POST" { return .reports }
        if rawComponents.first == "downloads" { return .downloads }
        guard rawComponents.count >= 3, rawComponents[0] == "api", rawComponents[1] == "plugins" else {
            return nil
        }
        switch rawComponents[2] {
        case "rollouts": return .rollouts
        case "releases": return .releases
        default: return nil
        }
    }

    /// Caller holds the lock.
    private func takeFault(for route: Route?) -> Fault? {
        for queue in [route, .any].compactMap({ $0 }) {
            if var faults = queuedFaults[queue], !faults.isEmpty {
                let fault = faults.removeFirst()
                queuedFaults[queue] = faults
                return fault
            }
        }
        if let route, let fault = persistentFaults[route] { return fault }
        return persistentFaults[.any]
    }

    /// The API's normal behaviour. Caller holds the lock.
    private func process(_ request: RecordedRequest, route: Route?, rawPath: String) -> Response {
        // A CDN does not want the API token, so downloads are served without it.
        if route != .downloads, request.header("authorization") != "Bearer \(token)" {
            unauthorizedRequests += 1
            return .json(401, ["error": "unauthorized"])
        }
        let components = rawPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            .map { String($0).removingPercentEncoding }
        guard rawPath.hasPrefix("/"), components.allSatisfy({ $0 != nil }) else {
            return .json(400, ["error": "malformed path \(rawPath)"])
        }
        let path = components.compactMap { $0 }
        let method = request.method

        if method == "POST" { return report(request, path: path) }
        if method == "GET", let plugin = match(path, ["api", "plugins", "rollouts", nil])?[0] {
            return rollouts[plugin] ?? .json(404, ["error": "no rollout"])
        }
        if method == "GET", let captured = match(path, ["api", "plugins", "releases", nil, nil]) {
            return releases[ReleaseKey(plugin: captured[0], version: captured[1])]
                ?? .json(404, ["error": "no release"])
        }
        if method == "GET", let name = match(path, ["downloads", nil])?[0] {
            guard let data = files[name] else { return .json(404, ["error": "no file"]) }
            return Response(status: 200, headers: [("Content-Type", "application/octet-stream")], body: data)
        }
        return .json(404, ["error": "no route for \(method) \(rawPath)"])
    }

    /// A POST: validated, deduplicated by Idempotency-Key, then accepted. Only accepted (2xx)
    /// answers are remembered, so a retry after a 4xx is judged afresh. Caller holds the lock.
    private func report(_ request: RecordedRequest, path: [String]) -> Response {
        let mediaType = request.header("content-type")?.split(separator: ";").first
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard mediaType == "application/json" else {
            badRequests += 1
            return .json(400, ["error": "missing Content-Type: application/json"])
        }
        guard let key = request.header("idempotency-key"), !key.isEmpty else {
            badRequests += 1
            return .json(400, ["error": "missing Idempotency-Key header"])
        }
        guard let object = (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any],
              let canonicalBody = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        else {
            badRequests += 1
            return .json(400, ["error": "body is not a JSON object"])
        }

        if let earlier = accepted[key] {
            guard earlier.path == request.path, earlier.canonicalBody == canonicalBody else {
                idempotencyConflicts += 1
                return .json(422, ["error": "idempotency key reused with a different request"])
            }
            duplicateDeliveries += 1
            return earlier.response
        }

        let outcome = accept(path: path, rawPath: request.path)
        guard (200..<300).contains(outcome.response.status) else { return outcome.response }
        accepted[key] = AcceptedRequest(path: request.path, canonicalBody: canonicalBody,
                                        response: outcome.response)
        reports.append(FakeCentralAPI.Report(
            method: request.method, path: request.path, idempotencyKey: key,
            body: Self.flattened(object), rawBody: request.body, assignedID: outcome.assignedID
        ))
        return outcome.response
    }

    /// The report endpoints of DESIGN.md. Caller holds the lock.
    private func accept(path: [String], rawPath: String) -> (response: Response, assignedID: String?) {
        if match(path, ["api", "plugins", "upgrades"]) != nil {
            let id = "upg-\(upgradeIDs.count + 1)"
            upgradeIDs.append(id)
            return (.json(201, ["id": id]), id)
        }
        if let id = match(path, ["api", "plugins", "upgrades", nil, "steps"])?[0] {
            // A client posting steps before it learnt its upgrade id is caught here.
            guard upgradeIDs.contains(id) else { return (.json(404, ["error": "no upgrade \(id)"]), nil) }
            return (.json(201, ["ok": true]), nil)
        }
        if match(path, ["api", "plugins", "backup"]) != nil {
            let id = "bkp-\(backupIDs.count + 1)"
            backupIDs.append(id)
            return (.json(201, ["id": id]), id)
        }
        if match(path, ["api", "plugins", "rollback", "initiate"]) != nil {
            let id = "rb-\(rollbackIDs.count + 1)"
            rollbackIDs.append(id)
            return (.json(201, ["rollback_id": id]), id)
        }
        if let id = match(path, ["api", "plugins", "rollback", nil, "complete"])?[0] {
            guard rollbackIDs.contains(id) else { return (.json(404, ["error": "no rollback \(id)"]), nil) }
            return (.json(200, ["ok": true]), nil)
        }
        if match(path, ["api", "plugins", "rollback"]) != nil {
            return (.json(201, ["ok": true]), nil)
        }
        return (.json(404, ["error": "no route for POST \(rawPath)"]), nil)
    }

    /// The segments in the places `pattern` leaves nil, if `path` has the pattern's shape.
    private func match(_ path: [String], _ pattern: [String?]) -> [String]? {
        guard path.count == pattern.count else { return nil }
        var captured: [String] = []
        for (segment, expected) in zip(path, pattern) {
            if let expected {
                guard segment == expected else { return nil }
            } else {
                guard !segment.isEmpty else { return nil }
                captured.append(segment)
            }
        }
        return captured
    }

    private static func flattened(_ object: [String: Any]) -> [String: String] {
        object.mapValues { value in
            if let string = value as? String { return string }
            let data = try? JSONSerialization.data(
                withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]
            )
            return data.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
        }
    }
}
