import Foundation

struct ReleaseKey: Hashable {
    let plugin: String
    let version: String
}

/// A report accepted under an Idempotency-Key, kept to answer its retries identically.
struct AcceptedRequest {
    let path: String
    /// The body re-encoded with sorted keys: a retry may order members differently (a process
    /// restarted after a crash encodes a dictionary in another order) and is still the same.
    let canonicalBody: Data
    let response: LoopbackHTTPServer.Response
}

/// The fake's state and behaviour, shared by the test's thread and the server's thread, all
/// under `condition` (a lock that can also wake `waitForReports`).
final class CentralAPIState: @unchecked Sendable {
    typealias Response = LoopbackHTTPServer.Response
    typealias Route = FakeCentralAPI.Route
    typealias Fault = FakeCentralAPI.Fault

    let token: String
    private let condition = NSCondition()

    var rollouts: [String: FakeCentralAPI.RolloutAnswer] = [:]
    var rolloutShape: FakeCentralAPI.RolloutShape = .wrapped
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
        condition.wait(until: deadline) { reports.count >= count }
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
            return rolloutResponse(rollouts[plugin])
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

    /// The rollout answer in the shape asked for: the seeds' `{"rollout": {...}}` (115ter), or the
    /// bare object. Caller holds the lock.
    private func rolloutResponse(_ answer: FakeCentralAPI.RolloutAnswer?) -> Response {
        switch answer {
        case nil:
            return .json(404, ["error": "no rollout"])
        case .null:
            return Response(status: 200, headers: [("Content-Type", "application/json")],
                            body: Data(#"{"rollout":null}"#.utf8))
        case .object(let object):
            switch rolloutShape {
            case .wrapped: return .json(200, ["rollout": object])
            case .bare: return .json(200, object)
            }
        }
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
            return issue("upg", in: &upgradeIDs, key: "id")
        }
        if let id = match(path, ["api", "plugins", "upgrades", nil, "steps"])?[0] {
            // A client posting steps before it learnt its upgrade id is caught here.
            return acknowledge(id, known: upgradeIDs, as: "upgrade", status: 201)
        }
        if match(path, ["api", "plugins", "backup"]) != nil {
            return issue("bkp", in: &backupIDs, key: "id")
        }
        if match(path, ["api", "plugins", "rollback", "initiate"]) != nil {
            return issue("rb", in: &rollbackIDs, key: "rollback_id")
        }
        if let id = match(path, ["api", "plugins", "rollback", nil, "complete"])?[0] {
            return acknowledge(id, known: rollbackIDs, as: "rollback", status: 200)
        }
        if match(path, ["api", "plugins", "rollback"]) != nil {
            return (.json(201, ["ok": true]), nil)
        }
        return (.json(404, ["error": "no route for POST \(rawPath)"]), nil)
    }

    /// A new id for a record the API creates (`upg-1`, `bkp-2`, ...), answered under `key`.
    private func issue(
        _ prefix: String, in ids: inout [String], key: String
    ) -> (response: Response, assignedID: String?) {
        let id = "\(prefix)-\(ids.count + 1)"
        ids.append(id)
        return (.json(201, [key: id]), id)
    }

    /// A report about a record created earlier: 404 for an id this API never issued.
    private func acknowledge(
        _ id: String, known ids: [String], as kind: String, status: Int
    ) -> (response: Response, assignedID: String?) {
        guard ids.contains(id) else { return (.json(404, ["error": "no \(kind) \(id)"]), nil) }
        return (.json(status, ["ok": true]), nil)
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
