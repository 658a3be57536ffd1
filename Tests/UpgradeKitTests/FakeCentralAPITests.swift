import Foundation
import MolamHTTP
import TestSupport
import Testing

/// The fake central API through the real libcurl client: the end-to-end tests trust it to hold
/// the client to DESIGN.md's contract and to fail exactly as asked, so both are checked here.
@Suite("FakeCentralAPI")
struct FakeCentralAPITests {
    // MARK: Authorization

    @Test("A request without the bearer token, or with a wrong one, is refused with 401 and not processed")
    func unauthorized() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.setRollout(plugin: "molam-form", ["status": "active"])

        let missing = try get(api, "/api/plugins/rollouts/molam-form", token: nil)
        #expect(missing.status == 401)
        #expect(json(missing)?["error"] as? String == "unauthorized")
        let wrong = try get(api, "/api/plugins/rollouts/molam-form", token: "tok-other")
        #expect(wrong.status == 401)
        let report = try post(api, "/api/plugins/upgrades", ["plugin_name": "molam-form"], key: "k1",
                              token: "Tok-3f9a")
        #expect(report.status == 401)

        #expect(api.unauthorizedRequests == 3)
        #expect(api.reports.isEmpty)
        // Nothing was assigned: the first accepted upgrade is still upg-1.
        let accepted = try post(api, "/api/plugins/upgrades", ["plugin_name": "molam-form"], key: "k1")
        #expect(json(accepted)?["id"] as? String == "upg-1")
    }

    @Test("The token must be exactly `Bearer <token>`")
    func tokenMustBeExact() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        for value in ["bearer \(apiToken)", apiToken, "Bearer \(apiToken)x", "Basic \(apiToken)"] {
            let response = try HTTPClient().send(HTTPRequest(
                url: api.baseURL + "/api/plugins/rollouts/x", headers: [("Authorization", value)]
            ))
            #expect(response.status == 401, "accepted \(value)")
        }
        #expect(api.unauthorizedRequests == 4)
    }

    // MARK: What it serves

    @Test("A rollout is served wrapped as the seeds document it, 404 before and after it is removed")
    func rollout() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        let none = try get(api, "/api/plugins/rollouts/molam-form")
        #expect(none.status == 404)
        #expect(json(none)?["error"] as? String == "no rollout")

        api.setRollout(plugin: "molam-form", [
            "version": "4.0.0", "rollout_percentage": 25, "status": "active", "target_countries": ["SN"],
        ])
        let served = try get(api, "/api/plugins/rollouts/molam-form")
        #expect(served.status == 200)
        #expect(served.headers["content-type"] == "application/json")
        #expect(String(decoding: served.body, as: UTF8.self)
            == #"{"rollout":{"rollout_percentage":25,"status":"active","target_countries":["SN"],"version":"4.0.0"}}"#)

        api.setRollout(plugin: "molam-form", nil)
        #expect(try get(api, "/api/plugins/rollouts/molam-form").status == 404)
    }

    @Test("The bare shape serves the rollout object alone; no active rollout can be {\"rollout\": null}")
    func rolloutShapes() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.setRollout(plugin: "molam-form", ["version": "4.0.0", "id": 1])
        api.setRolloutShape(.bare)
        let bare = try get(api, "/api/plugins/rollouts/molam-form")
        #expect(String(decoding: bare.body, as: UTF8.self) == #"{"id":1,"version":"4.0.0"}"#)
        api.setNoActiveRollout(plugin: "molam-form")
        let null = try get(api, "/api/plugins/rollouts/molam-form")
        #expect(null.status == 200)
        #expect(String(decoding: null.body, as: UTF8.self) == #"{"rollout":null}"#)
    }

    @Test("Path components are percent-decoded before lookup")
    func percentDecoding() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.setRollout(plugin: "molam form/β", ["status": "paused"])
        api.setRelease(plugin: "molam form/β", version: "4.0.0+build.1", ["version": "4.0.0+build.1"])
        let rollout = try get(api, "/api/plugins/rollouts/molam%20form%2F%CE%B2")
        #expect((json(rollout)?["rollout"] as? [String: Any])?["status"] as? String == "paused")
        let release = try get(api, "/api/plugins/releases/molam%20form%2F%CE%B2/4.0.0%2Bbuild.1")
        #expect(release.status == 200)
        #expect(try get(api, "/api/plugins/rollouts/molam%zzform").status == 400)
    }

    @Test("Release metadata is served per plugin and version, 404 for any other")
    func release() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.setRelease(plugin: "molam-form", version: "4.0.0", [
            "version": "4.0.0", "download_url": "https://cdn.example/x.zip", "sha256": "ab", "size_bytes": 10,
        ])
        let served = try get(api, "/api/plugins/releases/molam-form/4.0.0")
        #expect(served.status == 200)
        #expect(json(served)?["download_url"] as? String == "https://cdn.example/x.zip")
        #expect(json(served)?["size_bytes"] as? Int == 10)
        #expect(try get(api, "/api/plugins/releases/molam-form/4.0.1").status == 404)
        #expect(try get(api, "/api/plugins/releases/molam-other/4.0.0").status == 404)
        #expect(try get(api, "/api/plugins/releases/molam-form").status == 404)
    }

    @Test("A served file comes back byte for byte without the token; one sent with it is counted")
    func download() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        let bytes = Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let url = api.serveFile(name: "molam form-4.0.0.zip", data: bytes)
        #expect(url == api.baseURL + "/downloads/molam%20form-4.0.0.zip")

        let plain = try HTTPClient().send(HTTPRequest(url: url))
        #expect(plain.status == 200)
        #expect(plain.body == bytes)
        #expect(plain.headers["content-type"] == "application/octet-stream")
        #expect(api.downloadsWithAuthorization == 0)

        let leaked = try get(api, "/downloads/molam%20form-4.0.0.zip")
        #expect(leaked.body == bytes)
        #expect(api.downloadsWithAuthorization == 1)
        #expect(try HTTPClient().send(HTTPRequest(url: api.baseURL + "/downloads/other.zip")).status == 404)
        #expect(api.unauthorizedRequests == 0)
    }

    @Test("An unknown path or method is 404")
    func unknownRoutes() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        #expect(try get(api, "/api/plugins/upgrades").status == 404)
        #expect(try get(api, "/api/plugins/rollouts/").status == 404)
        let misspelt = try post(api, "/api/plugins/upgrade", ["plugin_name": "x"], key: "k1")
        #expect(misspelt.status == 404)
        #expect(try post(api, "/api/plugins/upgrades/", ["plugin_name": "x"], key: "k2").status == 404)
        #expect(api.reports.isEmpty)
    }

    // MARK: Reports

    @Test("Reports are accepted in order, each route with its own ids and answer")
    func reportsInOrder() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        let first = try post(api, "/api/plugins/upgrades", ["plugin_name": "molam-form", "attempt": 1],
                             key: "a")
        #expect(first.status == 201)
        #expect(json(first)?["id"] as? String == "upg-1")
        let second = try post(api, "/api/plugins/upgrades", ["plugin_name": "molam-form"], key: "b")
        #expect(json(second)?["id"] as? String == "upg-2")
        let step = try post(api, "/api/plugins/upgrades/upg-1/steps",
                            ["step": "download", "ok": true, "detail": ["bytes": 10]], key: "c")
        #expect(step.status == 201)
        #expect(json(step)?["ok"] as? Bool == true)
        let backup = try post(api, "/api/plugins/backup", ["backup_size_bytes": 512], key: "d")
        #expect(backup.status == 201)
        #expect(json(backup)?["id"] as? String == "bkp-1")
        let initiate = try post(api, "/api/plugins/rollback/initiate", ["reason": "verify failed"], key: "e")
        #expect(initiate.status == 201)
        #expect(json(initiate)?["rollback_id"] as? String == "rb-1")
        let complete = try post(api, "/api/plugins/rollback/rb-1/complete", ["success": true], key: "f")
        #expect(complete.status == 200)
        #expect(json(complete)?["ok"] as? Bool == true)
        let log = try post(api, "/api/plugins/rollback", ["status": "success", "rollback_version": "3.9.0"],
                           key: "g")
        #expect(log.status == 201)

        let reports = api.reports
        #expect(reports.map(\.path) == [
            "/api/plugins/upgrades", "/api/plugins/upgrades", "/api/plugins/upgrades/upg-1/steps",
            "/api/plugins/backup", "/api/plugins/rollback/initiate", "/api/plugins/rollback/rb-1/complete",
            "/api/plugins/rollback",
        ])
        #expect(reports.map(\.idempotencyKey) == ["a", "b", "c", "d", "e", "f", "g"])
        #expect(reports.map(\.assignedID) == ["upg-1", "upg-2", nil, "bkp-1", "rb-1", nil, nil])
        #expect(reports.allSatisfy { $0.method == "POST" })
        #expect(reports[0].body == ["plugin_name": "molam-form", "attempt": "1"])
        #expect(reports[2].body == ["step": "download", "ok": "true", "detail": #"{"bytes":10}"#])
        #expect(reports[3].rawBody == api.requests[3].body)
        #expect(api.duplicateDeliveries == 0)
        #expect(api.waitForReports(count: 7, timeout: 5))
    }

    @Test("A step or completion for an id the API never assigned is 404 and not recorded")
    func unknownIDs() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        #expect(try post(api, "/api/plugins/upgrades/upg-1/steps", ["step": "lock"], key: "a").status == 404)
        let completion = try post(api, "/api/plugins/rollback/rb-1/complete", ["success": true], key: "b")
        #expect(completion.status == 404)
        #expect(api.reports.isEmpty)
        // A 404 is not remembered under its key: once the upgrade exists, the retry is accepted.
        _ = try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: "c")
        #expect(try post(api, "/api/plugins/upgrades/upg-1/steps", ["step": "lock"], key: "a").status == 201)
        #expect(api.reports.count == 2)
    }

    @Test("A replay under the same key gets the first answer and is recorded once")
    func replay() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        let first = try post(api, "/api/plugins/upgrades", ["plugin_name": "molam-form"], key: "same")
        let again = try post(api, "/api/plugins/upgrades", ["plugin_name": "molam-form"], key: "same")
        #expect(again.status == first.status)
        #expect(again.body == first.body)
        #expect(json(again)?["id"] as? String == "upg-1")
        #expect(api.reports.count == 1)
        #expect(api.duplicateDeliveries == 1)
        #expect(api.idempotencyConflicts == 0)
        // The replay assigned nothing: the next upgrade is upg-2.
        let next = try post(api, "/api/plugins/upgrades", ["plugin_name": "molam-form"], key: "other")
        #expect(json(next)?["id"] as? String == "upg-2")
    }

    @Test("A replay whose members come in another order is still the same request")
    func replayInAnotherOrder() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        let first = try post(api, "/api/plugins/backup", raw: #"{"a":1,"b":"x"}"#, key: "k")
        let again = try post(api, "/api/plugins/backup", raw: #"{ "b": "x", "a": 1 }"#, key: "k")
        #expect(again.body == first.body)
        #expect(api.duplicateDeliveries == 1)
        #expect(api.idempotencyConflicts == 0)
    }

    @Test("The same key with a different body or path is refused with 422")
    func keyReused() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        _ = try post(api, "/api/plugins/upgrades", ["plugin_name": "molam-form"], key: "k")
        let otherBody = try post(api, "/api/plugins/upgrades", ["plugin_name": "molam-other"], key: "k")
        #expect(otherBody.status == 422)
        #expect(json(otherBody)?["error"] as? String == "idempotency key reused with a different request")
        let otherPath = try post(api, "/api/plugins/backup", ["plugin_name": "molam-form"], key: "k")
        #expect(otherPath.status == 422)
        #expect(api.idempotencyConflicts == 2)
        #expect(api.duplicateDeliveries == 0)
        #expect(api.reports.count == 1)
    }

    @Test("A POST without Idempotency-Key, JSON content type or JSON object body is 400 and not accepted")
    func badReports() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        let noKey = try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: nil)
        #expect(noKey.status == 400)
        #expect((json(noKey)?["error"] as? String)?.contains("Idempotency-Key") == true)
        let emptyKey = try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: "")
        #expect(emptyKey.status == 400)
        let noType = try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: "k", contentType: nil)
        #expect(noType.status == 400)
        #expect((json(noType)?["error"] as? String)?.contains("Content-Type") == true)
        let array = try post(api, "/api/plugins/upgrades", raw: "[1, 2]", key: "k")
        #expect(array.status == 400)
        #expect((json(array)?["error"] as? String)?.contains("JSON object") == true)
        #expect(try post(api, "/api/plugins/upgrades", raw: "", key: "k").status == 400)

        #expect(api.badRequests == 5)
        #expect(api.reports.isEmpty)
        let charset = try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: "k",
                               contentType: "application/json; charset=utf-8")
        #expect(json(charset)?["id"] as? String == "upg-1")
    }

    @Test("waitForReports returns once the count is reached and false at its deadline")
    func waitForReports() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        #expect(api.waitForReports(count: 1, timeout: 0.05) == false)
        _ = try post(api, "/api/plugins/backup", ["plugin_name": "x"], key: "k")
        #expect(api.waitForReports(count: 1, timeout: 5))
    }

    // MARK: Faults

    @Test("Queued faults are consumed in order, then the route answers normally")
    func queuedInOrder() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.setRollout(plugin: "p", ["status": "active"])
        api.inject(.status(503), on: .rollouts)
        api.inject(.tooManyRequests(retryAfter: "7"), on: .rollouts)
        api.inject(.status(500), on: .rollouts, times: 2)

        let unavailable = try get(api, "/api/plugins/rollouts/p")
        #expect(unavailable.status == 503)
        let limited = try get(api, "/api/plugins/rollouts/p")
        #expect(limited.status == 429)
        #expect(limited.headers["retry-after"] == "7")
        #expect(try get(api, "/api/plugins/rollouts/p").status == 500)
        #expect(try get(api, "/api/plugins/rollouts/p").status == 500)
        #expect(try get(api, "/api/plugins/rollouts/p").status == 200)
    }

    @Test("A route's own faults come before `.any` faults, which reach every route")
    func routeBeforeAny() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.setRelease(plugin: "p", version: "1.0.0", ["version": "1.0.0"])
        let url = api.serveFile(name: "p.zip", data: Data("zip".utf8))
        api.inject(.status(502), on: .any, times: 2)
        api.inject(.status(503), on: .releases)

        #expect(try get(api, "/api/plugins/releases/p/1.0.0").status == 503)
        #expect(try get(api, "/api/plugins/releases/p/1.0.0").status == 502)
        #expect(try HTTPClient().send(HTTPRequest(url: url)).status == 502)
        #expect(try HTTPClient().send(HTTPRequest(url: url)).status == 200)
        #expect(try get(api, "/api/plugins/releases/p/1.0.0").status == 200)
    }

    @Test("A fault on another route leaves this one alone")
    func otherRouteUntouched() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.setRollout(plugin: "p", ["status": "active"])
        api.inject(.status(503), on: .reports)
        #expect(try get(api, "/api/plugins/rollouts/p").status == 200)
        #expect(try post(api, "/api/plugins/backup", ["a": 1], key: "k").status == 503)
    }

    @Test("A persistent fault answers every request until cleared; queued faults still come first")
    func persistent() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.setPersistentFault(.status(503), on: .reports)
        api.inject(.tooManyRequests(retryAfter: "1"), on: .reports)
        #expect(try post(api, "/api/plugins/upgrades", ["a": 1], key: "k").status == 429)
        for _ in 0..<3 {
            #expect(try post(api, "/api/plugins/upgrades", ["a": 1], key: "k").status == 503)
        }
        #expect(api.reports.isEmpty)
        api.setPersistentFault(nil, on: .reports)
        #expect(try post(api, "/api/plugins/upgrades", ["a": 1], key: "k").status == 201)

        api.setPersistentFault(.status(500), on: .any)
        api.inject(.status(502), on: .rollouts, times: 3)
        #expect(try get(api, "/api/plugins/rollouts/p").status == 502)
        #expect(try post(api, "/api/plugins/backup", ["a": 1], key: "b").status == 500)
        api.clearFaults()
        #expect(try get(api, "/api/plugins/rollouts/p").status == 404)
        #expect(try post(api, "/api/plugins/backup", ["a": 1], key: "b").status == 201)
        #expect(api.reports.map(\.idempotencyKey) == ["k", "b"])
    }

    @Test("A dropped connection is a retryable error and the report is not accepted")
    func dropConnection() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.inject(.dropConnection, on: .reports)
        let error = #expect(throws: HTTPError.self) {
            try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: "k")
        }
        #expect(error?.isRetryable == true)
        #expect(api.reports.isEmpty)
        #expect(api.requests.count == 1)

        let retry = try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: "k")
        #expect(json(retry)?["id"] as? String == "upg-1")
        #expect(api.reports.count == 1)
        #expect(api.duplicateDeliveries == 0)
    }

    @Test("acceptThenDrop records the report; the retry under its key gets the missed answer")
    func acceptThenDrop() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.inject(.acceptThenDrop, on: .reports)
        let error = #expect(throws: HTTPError.self) {
            try post(api, "/api/plugins/rollback/initiate", ["reason": "smoke"], key: "k")
        }
        #expect(error?.isRetryable == true)
        #expect(api.reports.map(\.assignedID) == ["rb-1"])

        let retry = try post(api, "/api/plugins/rollback/initiate", ["reason": "smoke"], key: "k")
        #expect(retry.status == 201)
        #expect(json(retry)?["rollback_id"] as? String == "rb-1")
        #expect(api.reports.count == 1)
        #expect(api.duplicateDeliveries == 1)
    }

    @Test("malformedJSON answers 200 with a body that does not parse, and processes nothing")
    func malformedJSON() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.inject(.malformedJSON, on: .reports)
        let response = try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: "k")
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"id": "#)
        #expect((try? JSONSerialization.jsonObject(with: response.body)) == nil)
        #expect(api.reports.isEmpty)
    }

    @Test("truncatedBody announces the whole download and closes halfway")
    func truncatedBody() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        let bytes = Data(repeating: 0x5a, count: 20_000)
        let url = api.serveFile(name: "p.tar.gz", data: bytes)
        api.inject(.truncatedBody, on: .downloads)
        var received = 0
        let error = #expect(throws: HTTPError.self) {
            try HTTPClient().send(HTTPRequest(url: url)) { received += $0.count }
        }
        #expect(error?.isRetryable == true)
        #expect(received == 10_000)
        #expect(try HTTPClient().send(HTTPRequest(url: url)).body == bytes)
    }

    @Test("slow answers normally after its delay")
    func slowAnswers() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.setRollout(plugin: "p", ["status": "active"])
        api.inject(.slow(seconds: 0.05), on: .rollouts)
        let response = try get(api, "/api/plugins/rollouts/p")
        #expect(response.status == 200)
        #expect((json(response)?["rollout"] as? [String: Any])?["status"] as? String == "active")
    }

    @Test("slow processes the report even when the client gives up first")
    func slowProcesses() throws {
        let api = try FakeCentralAPI(token: apiToken)
        defer { api.stop() }
        api.inject(.slow(seconds: 0.3), on: .reports)
        let error = #expect(throws: HTTPError.self) {
            try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: "k", timeout: 0.05)
        }
        guard case .timedOut = error else {
            Issue.record("expected a timeout, got \(String(describing: error))")
            return
        }
        #expect(api.waitForReports(count: 1, timeout: 5))
        // The retry waits for the server to finish the slow answer, then gets the same id.
        let retry = try post(api, "/api/plugins/upgrades", ["plugin_name": "x"], key: "k")
        #expect(json(retry)?["id"] as? String == "upg-1")
        #expect(api.duplicateDeliveries == 1)
    }
}

// MARK: Helpers

private let apiToken = "tok-3f9a"

private func get(
    _ api: FakeCentralAPI, _ path: String, token: String? = apiToken
) throws -> HTTPResponse {
    var headers: [(name: String, value: String)] = []
    if let token { headers.append(("Authorization", "Bearer \(token)")) }
    return try HTTPClient().send(HTTPRequest(url: api.baseURL + path, headers: headers))
}

private func post(
    _ api: FakeCentralAPI, _ path: String, _ body: [String: Any], key: String?,
    token: String = apiToken, contentType: String? = "application/json",
    timeout: Double = 10
) throws -> HTTPResponse {
    let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
    return try post(api, path, raw: String(decoding: data, as: UTF8.self), key: key, token: token,
                    contentType: contentType, timeout: timeout)
}

private func post(
    _ api: FakeCentralAPI, _ path: String, raw body: String, key: String?,
    token: String = apiToken, contentType: String? = "application/json",
    timeout: Double = 10
) throws -> HTTPResponse {
    var headers: [(name: String, value: String)] = [("Authorization", "Bearer \(token)")]
    if let contentType { headers.append(("Content-Type", contentType)) }
    if let key { headers.append(("Idempotency-Key", key)) }
    return try HTTPClient().send(HTTPRequest(
        url: api.baseURL + path, method: "POST", headers: headers, body: Data(body.utf8),
        totalTimeout: timeout
    ))
}

private func json(_ response: HTTPResponse) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any]
}
