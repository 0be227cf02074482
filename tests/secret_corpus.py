"""A planted-secret corpus (files as they appear in real repositories, each secret marked with its kind)
and a corpus of ordinary code and configuration that holds no secret. Used by tests/test_privacy_*.py
and bench/scrub.py. Every value is made up (random, from a fixed seed) in the shape of the real thing.

A secret is written `«kind:value»` in a file's text; `PLANTED` holds the files with the markers
removed and the (kind, value) list. Kinds name what the secret is (aws, stripe, password, pem, ...),
file types come from the paths.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from dataclasses import dataclass

__all__ = ["CLEAN", "PLANTED", "PlantedFile", "all_secrets"]

_rng = random.Random(20261606)
AN = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = AN + "+/"
URLSAFE = AN + "-_"


def r(n: int, chars: str = AN) -> str:
    """n random characters."""
    return "".join(_rng.choice(chars) for _ in range(n))


def up(n: int) -> str:
    return r(n, string.ascii_uppercase + string.digits)


def b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def jwt() -> str:
    return (b64url({"alg": "HS256", "typ": "JWT"}) + "." +
            b64url({"sub": r(12, HEX), "name": "svc-" + r(5, string.ascii_lowercase), "iat": 1760000000 + _rng.randint(0, 10**6)})
            + "." + r(43, URLSAFE))


def pem_body(lines: int, width: int = 64) -> str:
    return "\n".join(r(width, B64) for _ in range(lines - 1)) + "\n" + r(width // 2, B64) + "=="


@dataclass(frozen=True)
class PlantedFile:
    """One file: its path, its text and the secrets planted in it as (kind, value)."""

    path: str
    text: str
    secrets: tuple[tuple[str, str], ...]

    @property
    def file_type(self) -> str:
        name = self.path.rsplit("/", 1)[-1]
        if name.startswith(".env") or name.endswith(".env"):
            return "env"
        if "." not in name.lstrip("."):
            return name.lstrip(".")
        return name.rsplit(".", 1)[-1]


_MARK = re.compile(r"«([a-z_]+):(.*?)»", re.DOTALL)


def _plant(path: str, text: str) -> PlantedFile:
    secrets = tuple((m.group(1), m.group(2)) for m in _MARK.finditer(text))
    return PlantedFile(path, _MARK.sub(lambda m: m.group(2), text), secrets)


AWS_ID, AWS_SECRET = "AKIA" + up(16), r(40, AN + "/+")
AWS_ID2, AWS_SECRET2 = "AKIA" + up(16), r(40, AN + "/+")

PLANTED: list[PlantedFile] = [
    _plant("services/billing/.env", f"""\
# billing service, local overrides
APP_ENV=production
PORT=8080
PAYMENTS_API_KEY=«saas:pk_{r(24, HEX)}»
STRIPE_SECRET_KEY=«stripe:sk_live_{r(24)}»
STRIPE_WEBHOOK_SECRET=«stripe:whsec_{r(32)}»
DATABASE_URL=postgres://billing:«password:{r(6)}/{r(8)}»@db.internal:5432/billing
REDIS_URL=redis://:«password:{r(20)}»@cache.internal:6379/0
SENTRY_DSN=https://{r(32, HEX)}@o{_rng.randint(10**5, 10**6)}.ingest.sentry.io/{_rng.randint(10**6, 10**7)}
LOG_LEVEL=info
"""),
    _plant("deploy/.env.production", f"""\
NODE_ENV=production
OPENAI_API_KEY=«openai:sk-proj-{r(48, URLSAFE)}»
ANTHROPIC_API_KEY=«anthropic:sk-ant-api03-{r(93, URLSAFE)}-{r(6)}AA»
DD_API_KEY=«datadog:{r(32, HEX)}»
SESSION_SECRET=«password:{r(10, string.ascii_lowercase)}-{r(10, string.ascii_lowercase)}»
JWT_SIGNING_KEY="«password:{r(48, B64)}»"
FEATURE_FLAGS=new_checkout,fast_search
"""),
    _plant("home/.aws/credentials", f"""\
[default]
aws_access_key_id = «aws:{AWS_ID}»
aws_secret_access_key = «aws:{AWS_SECRET}»
region = eu-west-1

[ci]
aws_access_key_id=«aws:{AWS_ID2}»
aws_secret_access_key=«aws:{AWS_SECRET2}»
aws_session_token = «aws:{r(40, AN + '/+')}{r(100, AN + '/+')}=»
"""),
    _plant("scripts/deploy.sh", f"""\
#!/usr/bin/env bash
set -euo pipefail
export AWS_ACCESS_KEY_ID=«aws:AKIA{up(16)}»
export AWS_SECRET_ACCESS_KEY=«aws:{r(40, AN + '/+')}»
export GITHUB_TOKEN=«github:ghp_{r(36)}»
curl -fsS -u deploy:«password:{r(14)}» https://ci.example.com/api/builds
curl -H "Authorization: Bearer «bearer:{r(40, URLSAFE)}»" https://api.example.com/v1/releases
psql "host=db.internal port=5432 user=deployer password=«password:{r(7)}#{r(5)}» dbname=app sslmode=require" -c 'select 1'
docker login -u ci --password «password:{r(18)}» registry.example.com
"""),
    _plant("config/database.yml", f"""\
default: &default
  adapter: postgresql
  encoding: unicode
  pool: 5

production:
  <<: *default
  database: shop_production
  username: shop
  password: «password:{r(6, string.ascii_lowercase)}{_rng.randint(10, 99)}{r(4, string.ascii_uppercase)}»
  host: db.internal
"""),
    _plant("k8s/secret.yaml", f"""\
apiVersion: v1
kind: Secret
metadata:
  name: api-credentials
type: Opaque
stringData:
  api_key: «password:{r(32)}»
  client_secret: «password:{r(12)}~{r(27)}»
data:
  db-password: «password:{base64.b64encode(r(16).encode()).decode()}»
"""),
    _plant("docker-compose.yml", f"""\
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: «password:{r(9)}»
  worker:
    build: .
    environment:
      - SLACK_BOT_TOKEN=«slack:xoxb-{_rng.randint(10**11, 10**12)}-{_rng.randint(10**12, 10**13)}-{r(24)}»
      - SENDGRID_API_KEY=«sendgrid:SG.{r(22, URLSAFE)}.{r(43, URLSAFE)}»
"""),
    _plant(".github/workflows/release.yml", f"""\
name: release
on: push
jobs:
  publish:
    runs-on: ubuntu-latest
    env:
      NPM_TOKEN: «npm:npm_{r(36)}»
    steps:
      - uses: actions/checkout@v4
      - run: echo "//registry.npmjs.org/:_authToken=$NPM_TOKEN" > ~/.npmrc
      - run: curl -X POST -d '{{"text":"released"}}' «slack:https://hooks.slack.com/services/T{up(8)}/B{up(8)}/{r(24)}»
"""),
    _plant("src/main/resources/application.properties", f"""\
server.port=8443
spring.datasource.url=jdbc:postgresql://db.internal:5432/orders
spring.datasource.username=orders
spring.datasource.password=«password:{r(8)}!{r(4)}»
app.mail.api-key=«password:{r(40, HEX)}»
"""),
    _plant("src/main/resources/application.yml", f"""\
spring:
  mail:
    host: smtp.sendgrid.net
    password: «password:{r(20)}»
twilio:
  account-sid: AC{r(32, HEX)}
  api-key: «twilio:SK{r(32, HEX)}»
"""),
    _plant("settings/service-account.json", json.dumps({
        "type": "service_account", "project_id": "billing-prod-4711",
        "private_key_id": r(40, HEX),  # an id, not a credential
        "private_key": f"-----BEGIN PRIVATE KEY-----\n«pem:{pem_body(4)}»\n-----END PRIVATE KEY-----\n",
        "client_email": "billing@billing-prod-4711.iam.gserviceaccount.com", "client_id": str(_rng.randint(10**20, 10**21)),
        "token_uri": "https://oauth2.googleapis.com/token"}, indent=2, ensure_ascii=False)),
    _plant("web/appsettings.json", f"""\
{{
  "ConnectionStrings": {{
    "Default": "Server=tcp:sql-prod.database.windows.net,1433;Database=app;User ID=app;Password=«password:{r(12)}»;Encrypt=true;"
  }},
  "Storage": "DefaultEndpointsProtocol=https;AccountName=appstore;AccountKey=«azure:{r(86, B64)}==»;EndpointSuffix=core.windows.net",
  "Maps": {{ "ApiKey": "«google:AIza{r(35, URLSAFE)}»" }},
  "Logging": {{ "LogLevel": {{ "Default": "Information" }} }}
}}
"""),
    _plant("web/Web.config", f"""\
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="StripeApiKey" value="«stripe:rk_live_{r(24)}»" />
    <add key="Environment" value="Production" />
  </appSettings>
  <connectionStrings>
    <add name="Main" connectionString="Data Source=sql01;Initial Catalog=Shop;User Id=shop;Password=«password:{r(10)}»;" />
  </connectionStrings>
</configuration>
"""),
    _plant("ci/settings.xml", f"""\
<settings>
  <servers>
    <server>
      <id>internal-releases</id>
      <username>deployer</username>
      <password>«password:{r(16)}»</password>
    </server>
    <server>
      <id>github</id>
      <privateKey>${{user.home}}/.ssh/id_rsa</privateKey>
      <passphrase>«password:{r(5, string.ascii_lowercase)}-{r(5, string.ascii_lowercase)}-{r(4)}»</passphrase>
    </server>
  </servers>
</settings>
"""),
    _plant("app/clients/payments.py", f"""\
import stripe
from anthropic import Anthropic

stripe.api_key = "«stripe:sk_live_{r(24)}»"
client = Anthropic(api_key="«anthropic:sk-ant-api03-{r(80, URLSAFE)}»")
HF_TOKEN = "«huggingface:hf_{r(34)}»"

def connect():
    return psycopg.connect("postgresql://app:«password:{r(12)}»@db.internal/app")
"""),
    _plant("app/tests/fixtures.py", f"""\
# A token captured from staging for the auth tests.
STAGING_TOKEN = "«jwt:{jwt()}»"
HEADERS = {{"Authorization": "Bearer «jwt:{jwt()}»"}}
"""),
    _plant("frontend/src/config.js", f"""\
export const config = {{
  apiBase: "https://api.example.com",
  mapboxToken: "«saas:sk.{b64url({'u': r(8), 'a': r(12)})}.{r(22, URLSAFE)}»",
  algoliaApiKey: "«saas:{r(32, HEX)}»",
  githubToken: "«github:github_pat_{r(22)}_{r(59)}»",
}};
"""),
    _plant("cmd/server/main.go", f"""\
package main

const dbPassword = "«password:{r(14)}»"

var telegramToken = "«telegram:{_rng.randint(10**9, 10**10)}:AA{r(33, URLSAFE)}»"

func main() {{
	discord := "«discord:M{r(23, URLSAFE)}.{r(6, URLSAFE)}.{r(27, URLSAFE)}»"
	_ = discord
}}
"""),
    _plant("src/main/java/com/shop/Keys.java", f"""\
package com.shop;

public final class Keys {{
    private static final String MAILCHIMP_KEY = "«mailchimp:{r(32, HEX)}-us{_rng.randint(1, 20)}»";
    private static final String SHOPIFY_TOKEN = "«shopify:shpat_{r(32, HEX)}»";
    static final String DB_PASSWORD = "«password:{r(11)}»";
}}
"""),
    _plant("lib/tasks/backup.rake", f"""\
task :backup do
  sh "pg_dump postgres://backup:«password:{r(15)}»@db.internal/shop > dump.sql"
  sh "aws s3 cp dump.sql s3://backups/ --sse"
end
"""),
    _plant("infra/terraform.tfvars", f"""\
region        = "eu-west-1"
db_password   = "«password:{r(16)}»"
do_token      = "«saas:dop_v1_{r(64, HEX)}»"
gitlab_token  = "«gitlab:glpat-{r(20, URLSAFE)}»"
"""),
    _plant("home/.npmrc", f"""\
registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken=«npm:npm_{r(36)}»
"""),
    _plant("home/.pypirc", f"""\
[pypi]
username = __token__
password = «pypi:pypi-AgEIcHlwaS5vcmc{r(140, URLSAFE)}»
"""),
    _plant("deploy/id_ed25519.pem", f"""\
-----BEGIN OPENSSH PRIVATE KEY-----
«pem:{pem_body(5, 70)}»
-----END OPENSSH PRIVATE KEY-----
"""),
    _plant("certs/server.key", f"""\
-----BEGIN EC PRIVATE KEY-----
«pem:{pem_body(3)}»
-----END EC PRIVATE KEY-----
"""),
    _plant("ansible/group_vars/all.yml", f"""\
ansible_user: deploy
ansible_become_pass: «password:{r(12)}»
ssh_private_key: |
  -----BEGIN RSA PRIVATE KEY-----
  «pem:{r(64, B64)}»
  «pem:{r(64, B64)}»
  -----END RSA PRIVATE KEY-----
"""),
    _plant("docker/Dockerfile", f"""\
FROM python:3.12-slim
ENV PIP_NO_CACHE_DIR=1
ENV HUGGINGFACE_TOKEN=«huggingface:hf_{r(34)}»
RUN pip install -r requirements.txt
"""),
    _plant("docs/runbook.md", f"""\
Connect to the queue with `amqp://ops:«password:{r(12)}»@rabbit.internal:5672/%2F` and the
search cluster with `https://elastic:«password:{r(20)}»@search.internal:9200`.
For the smoke test use the service token «jwt:{jwt()}» until it expires.
Share links expire: https://appstore.blob.core.windows.net/exports/q3.csv?sv=2022-11-02&se=2026-12-01&sr=b&sp=r&sig=«azure:{r(43, B64)}%3D»
"""),
    _plant("config/my.cnf", f"""\
[client]
user = report
password = «password:{r(13)}»
host = db.internal
"""),
]


def all_secrets() -> list[tuple[str, str, str]]:
    """(file type, kind, value) of every planted secret."""
    return [(f.file_type, kind, value) for f in PLANTED for kind, value in f.secrets]


#: Ordinary code and configuration without a secret: must pass the scrubber unchanged.
CLEAN: list[tuple[str, str]] = [
    ("app/auth.py", """\
import os
import secrets

from app.models import User

PASSWORD_MIN_LENGTH = 12
TOKEN_TTL_SECONDS = 3600
SECRET_KEY = os.environ["SECRET_KEY"]


def check_password(user: User, password: str) -> bool:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValueError("password too short")
    return user.verify(password=password)


def new_token() -> str:
    token = secrets.token_urlsafe(32)
    api_key = os.getenv("API_KEY", "")
    return f"{token}:{len(api_key)}"
"""),
    ("web/src/login.ts", """\
import { useState } from "react";

export function LoginForm({ onSubmit }: { onSubmit: (u: string, p: string) => void }) {
  const [password, setPassword] = useState("");
  const [token, setToken] = useState<string | null>(null);
  const apiKey = process.env.NEXT_PUBLIC_API_KEY ?? "";
  return <form onSubmit={() => onSubmit(user, password)}><input type="password" value={password} /></form>;
}
"""),
    ("k8s/deployment.yaml", """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  template:
    spec:
      containers:
        - name: api
          image: registry.example.com/api:1.4.2
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: db-credentials
                  key: password
      volumes:
        - name: tls
          secret:
            secretName: api-tls
"""),
    ("docker-compose.override.yml", """\
services:
  db:
    environment:
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
      POSTGRES_USER: app
  api:
    environment:
      - API_TOKEN=${API_TOKEN}
      - SECRET_KEY_FILE=/run/secrets/secret_key
"""),
    (".env.example", """\
# Copy to .env and fill in
DATABASE_URL=postgres://app@localhost:5432/app
STRIPE_SECRET_KEY=
OPENAI_API_KEY=<your key>
SESSION_SECRET=changeme
TOKEN_TTL=3600
PASSWORD_MIN_LENGTH=12
AUTH_ENABLED=true
"""),
    ("cmd/api/main.go", """\
package main

import (
	"net/http"
	"os"
)

func main() {
	password := os.Getenv("DB_PASSWORD")
	token := r.Header.Get("Authorization")
	mux := http.NewServeMux()
	mux.HandleFunc("/login", login(password, token))
	http.ListenAndServe(":8080", mux)
}
"""),
    ("src/lib.rs", """\
use std::env;

pub struct Config { pub api_key: String, pub secret: Option<String> }

pub fn load() -> Config {
    let api_key = env::var("API_KEY").expect("API_KEY");
    Config { api_key, secret: env::var("SECRET").ok() }
}
"""),
    ("scripts/setup.sh", """\
#!/bin/sh
set -e
export PATH="$HOME/.local/bin:$PATH"
export API_KEY="$(pass show api/key)"
read -r -s -p "Password: " PASSWORD
curl -fsS -H "Authorization: Bearer $API_TOKEN" https://api.example.com/health
git clone https://github.com/example/tools.git
"""),
    ("config/settings.ini", """\
[server]
host = 0.0.0.0
port = 8080
password_file = /etc/app/password
token_url = https://auth.example.com/oauth/token

[logging]
level = info
"""),
    ("pom.xml", """\
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example</groupId>
  <artifactId>shop</artifactId>
  <version>1.2.0</version>
  <properties><password.encoder>bcrypt</password.encoder></properties>
</project>
"""),
    ("package.json", """\
{
  "name": "shop-web",
  "version": "2.3.1",
  "scripts": { "build": "next build", "test": "vitest" },
  "dependencies": { "next": "15.0.3", "react": "19.0.0", "jsonwebtoken": "9.0.2" }
}
"""),
    ("app/db.py", """\
from sqlalchemy import create_engine

def engine(host: str, user: str, password: str):
    url = f"postgresql://{user}:{password}@{host}/app"
    return create_engine(url, pool_pre_ping=True)


def connect(conn_str):
    return psycopg.connect(conn_str, password=password)
"""),
    ("docs/api.md", """\
Send the key in a header: `Authorization: Bearer <token>`. Tokens expire after one hour;
ask for a new one at `POST /v1/token` with your `client_id` and `client_secret`.
See https://example.com:8443/docs/auth for details.
"""),
]
