"""Releases of the molam-form fixture, built at run time from Fixtures/wordpress/molam-form/.

The template is a working plugin at version 0.0.0: a release replaces "0.0.0" and "0_0_0" (the
per-release function name of the lazily loaded payment code) and may break itself on purpose.
Every file is written anew, so each release has fresh mtimes, and zipped with one top directory.
"""

import hashlib
import os
import stat
import time
import zipfile

PLUGIN = "molam-form"

# kind → what it breaks; the agent must roll each of these back.
BROKEN_KINDS = ("syntax-main", "syntax-lazy", "runtime-fatal", "smoke-fail")


class Release:
    def __init__(self, version, kind, flavour, tree, archive, sha256):
        self.version = version
        self.kind = kind
        self.flavour = flavour
        self.tree = tree
        self.archive = archive
        self.sha256 = sha256


class ReleaseFactory:
    def __init__(self, repo, out_dir):
        self.template = os.path.join(repo, "Fixtures", "wordpress", PLUGIN)
        self.out_dir = out_dir
        self.count = 0

    def build(self, version, site_url, kind="good", flavour="lazy"):
        """kind: "good" or one of BROKEN_KINDS; flavour: "lazy" (payment code required inside the
        payment callback) or "eager" (also required when the main file loads)."""
        if kind != "good" and kind not in BROKEN_KINDS:
            raise ValueError(f"unknown release kind {kind}")
        self.count += 1
        top = os.path.join(self.out_dir, f"{self.count:04d}-{version}-{kind}-{flavour}")
        tree = os.path.join(top, PLUGIN)
        os.makedirs(tree)
        function_suffix = version.replace(".", "_").replace("-", "_")
        for folder, _, files in os.walk(self.template):
            relative = os.path.relpath(folder, self.template)
            target_folder = os.path.normpath(os.path.join(tree, relative))
            os.makedirs(target_folder, exist_ok=True)
            for name in files:
                source = os.path.join(folder, name)
                with open(source) as f:
                    text = f.read()
                text = text.replace("0.0.0", version).replace("0_0_0", function_suffix)
                text = text.replace("{site_url}", site_url)
                text = self._break(os.path.join(relative, name), text, kind, flavour)
                target = os.path.join(target_folder, name)
                with open(target, "w") as f:
                    f.write(text)
                os.chmod(target, 0o755 if os.stat(source).st_mode & stat.S_IXUSR else 0o644)
        archive = os.path.join(self.out_dir, f"{PLUGIN}-{version}-{kind}-{flavour}-{self.count:04d}.zip")
        self._zip(top, archive)
        with open(archive, "rb") as f:
            sha256 = hashlib.sha256(f.read()).hexdigest()
        return Release(version, kind, flavour, tree, archive, sha256)

    @staticmethod
    def _break(relative, text, kind, flavour):
        relative = os.path.normpath(relative)
        if relative == "molam-form.php":
            if flavour == "eager":
                text = text.replace("/* molam:eager */", "require_once __DIR__ . '/includes/pay-charge.php';")
            if kind == "syntax-main":
                text += "\nfunction molam_form_unfinished( {\n"
            elif kind == "runtime-fatal":
                # Loads, serves the version route, but every payment (and the GET dry run) fatals.
                text = text.replace("\t$order_id = molam_charge_",
                                    "\tmolam_capture_funds( $amount, $currency );\n\t$order_id = molam_charge_", 1)
        elif relative == os.path.join("includes", "pay-charge.php") and kind == "syntax-lazy":
            text = text.replace("\tglobal $wpdb;", "\tglobal $wpdb\n\t$unfinished = array(;", 1)
        elif relative == os.path.join("bin", "smoke") and kind == "smoke-fail":
            text = text.replace("# molam:smoke-extra",
                                'fail "gateway self-test failed (release built to fail its smoke check)"')
        return text

    @staticmethod
    def _zip(top, archive):
        now = time.localtime()[:6]
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
            for folder, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(dirs) + sorted(files):
                    path = os.path.join(folder, name)
                    relative = os.path.relpath(path, top)
                    is_dir = os.path.isdir(path)
                    info = zipfile.ZipInfo(relative + ("/" if is_dir else ""), date_time=now)
                    info.create_system = 3
                    mode = os.stat(path).st_mode
                    info.external_attr = (stat.S_IMODE(mode) | (stat.S_IFDIR if is_dir else stat.S_IFREG)) << 16
                    if is_dir:
                        info.external_attr |= 0x10
                        out.writestr(info, b"")
                    else:
                        info.compress_type = zipfile.ZIP_DEFLATED
                        with open(path, "rb") as f:
                            out.writestr(info, f.read())
