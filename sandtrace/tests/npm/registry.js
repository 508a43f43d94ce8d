// A static npm registry for sandtrace's npm test (tests/npm_registry.rs), run with node:
//
//     node registry.js DIR HOST
//
// DIR holds, for each package, NAME.json (its package.json) and NAME.tgz (its tarball). The
// registry serves each package's packument at /NAME (one version, with the tarball's shasum
// and integrity) and its tarball at /NAME/-/NAME-VERSION.tgz, on an ephemeral port of HOST,
// and prints `ready PORT` once it listens. Tarball URLs use the request's Host header, so
// clients fetch them by the name they reached the registry with.

const crypto = require("crypto");
const fs = require("fs");
const http = require("http");
const path = require("path");

const [dir, host] = process.argv.slice(2);
const packages = new Map();
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
  const tarball = fs.readFileSync(path.join(dir, `${manifest.name}.tgz`));
  packages.set(manifest.name, { manifest, tarball });
}

function packument({ manifest, tarball }, base) {
  const { name, version } = manifest;
  const digest = (algorithm, encoding) =>
    crypto.createHash(algorithm).update(tarball).digest(encoding);
  const published = {
    ...manifest,
    _id: `${name}@${version}`,
    dist: {
      tarball: `${base}/${name}/-/${name}-${version}.tgz`,
      shasum: digest("sha1", "hex"),
      integrity: `sha512-${digest("sha512", "base64")}`,
    },
  };
  return { _id: name, name, "dist-tags": { latest: version }, versions: { [version]: published } };
}

const server = http.createServer((req, res) => {
  const url = decodeURIComponent(req.url.split("?")[0]).replace(/^\/+/, "");
  const tarballOf = url.match(/^(.+)\/-\/[^/]+\.tgz$/);
  const pkg = packages.get(tarballOf ? tarballOf[1] : url);
  if (!pkg) {
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "not found" }));
  } else if (tarballOf) {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(pkg.tarball);
  } else {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(packument(pkg, `http://${req.headers.host}`)));
  }
});
server.listen(0, host, () => console.log(`ready ${server.address().port}`));
