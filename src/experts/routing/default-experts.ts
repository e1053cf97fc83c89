/**
 * The six experts of the seed (Python, SQL, JavaScript, debugging, machine learning, APIs),
 * described in the words users type, so that a router works out of the box.
 * @module
 */
import type { ExpertProfile } from './types';

const python: ExpertProfile = {
  id: 'python',
  name: 'Python expert',
  domain: 'python',
  description:
    'Writes, explains and refactors Python code: the language and its standard library, idiomatic ' +
    'scripts, classes and modules, packaging and virtual environments, data wrangling with pandas ' +
    'and numpy, concurrency with asyncio, threads and multiprocessing, and Python tooling.',
  keywords: [
    'python', 'python3', 'pythonic', 'pip install', 'virtualenv', 'venv virtual environment', 'conda', 'poetry',
    'pyproject.toml', 'requirements.txt', 'ModuleNotFoundError', 'list comprehension', 'nested list', 'dict',
    'dictionary keys', 'tuple', 'frozenset', 'decorator', 'generator yield', 'iterator', 'itertools',
    'collections Counter', 'defaultdict', 'dataclass', 'type hints typing', 'mypy', 'f-string formatting',
    'lambda', '__init__ self', 'classmethod staticmethod', 'property setter', '*args **kwargs', 'asyncio',
    'coroutine', 'GIL', 'multiprocessing', 'threading', 'pandas dataframe', 'numpy array', 'django',
    'pytest fixture', 'unittest mock', 'pep8 black flake8', 'context manager', 'open file read write',
    'csv module', 'json module', 'pickle', 'regex re module', 'enumerate zip', 'sorted key', 'slicing',
    'string split join', 'datetime strptime', 'pathlib os.path', 'subprocess', 'argparse', 'jupyter notebook',
    'cpython interpreter',
  ],
};

const sql: ExpertProfile = {
  id: 'sql',
  name: 'SQL expert',
  domain: 'sql',
  description:
    'Writes and optimises SQL queries and designs relational databases: joins, aggregation, ' +
    'subqueries and window functions, schemas, keys and indexes, transactions and locking, query ' +
    'plans and slow queries, migrations, in PostgreSQL, MySQL, SQLite, SQL Server and Oracle.',
  keywords: [
    'sql', 'sql query', 'select', 'join', 'inner join', 'left join', 'outer join', 'group by', 'order by',
    'having', 'subquery', 'cte', 'window function', 'row_number', 'partition by', 'union', 'distinct',
    'case when', 'coalesce', 'index', 'composite index', 'primary key', 'foreign key', 'schema', 'table',
    'column', 'rows', 'create table', 'alter table', 'insert', 'update statement', 'delete rows', 'upsert',
    'transaction', 'isolation level', 'row lock', 'query plan', 'explain analyze', 'full table scan',
    'postgres', 'postgresql', 'mysql', 'sqlite', 'sql server', 'oracle', 'normalization',
    'materialized view', 'stored procedure', 'trigger', 'constraint', 'null values', 'aggregate count sum',
    'duplicate records', 'database', 'relational', 'schema migration', 'orm', 'pivot', 'second highest salary',
  ],
};

const javascript: ExpertProfile = {
  id: 'javascript',
  name: 'JavaScript expert',
  domain: 'javascript',
  description:
    'Writes and fixes JavaScript and TypeScript for the browser and Node.js: the language, ' +
    'promises and async/await, the event loop, the DOM and events, React, Vue and Angular ' +
    'components, npm packages, bundlers and build tooling, modules and front-end testing.',
  keywords: [
    'javascript', 'js', 'typescript', 'node.js', 'nodejs', 'npm', 'yarn', 'pnpm', 'react', 'react hooks',
    'useState', 'useEffect', 'props', 'component rerender', 'jsx', 'vue', 'angular', 'svelte', 'next.js',
    'redux', 'dom element', 'document.querySelector', 'event listener', 'click handler', 'promise',
    'async await', 'callback', 'closure', 'this undefined', 'arrow function', 'let const var', 'hoisting',
    'prototype', 'es6', 'es modules', 'import export', 'require commonjs', 'webpack', 'vite', 'babel',
    'eslint', 'jest', 'package.json', 'node_modules', 'array map filter reduce', 'forEach', 'destructuring',
    'spread operator', 'deep clone object', 'JSON.stringify', 'setTimeout', 'debounce', 'localStorage',
    'browser', 'frontend', 'html', 'css', 'strict equality ===', 'tsconfig', 'interface generics',
  ],
};

const debug: ExpertProfile = {
  id: 'debug',
  name: 'Debugging expert',
  domain: 'debug',
  description:
    'Finds and fixes bugs in any language: reads error messages, stack traces and crash dumps, ' +
    'reproduces failures, steps through code in a debugger, hunts memory leaks, race conditions, ' +
    'hangs and intermittent failures, and explains the root cause of unexpected behaviour.',
  keywords: [
    'debug', 'debugging', 'debugger', 'bug', 'error message', 'stack trace', 'traceback', 'exception',
    'uncaught exception', 'crash', 'crashes', 'segfault', 'segmentation fault', 'SIGSEGV signal 11',
    'core dump', 'double free', 'use after free', 'breakpoint', 'conditional breakpoint', 'gdb', 'lldb',
    'pdb', 'step through', 'watch variable', 'print debugging', 'logging', 'logs', 'memory leak',
    'memory keeps growing', 'valgrind', 'address sanitizer', 'null pointer', 'NullPointerException',
    'undefined behavior', 'race condition', 'deadlock', 'hangs', 'freezes', 'stuck', 'infinite loop',
    'off-by-one', 'regression', 'git bisect', 'which commit introduced', 'reproduce', 'minimal reproducible example',
    'root cause', 'assertion failed', 'intermittent', 'flaky test', 'fails on CI', 'broken', 'wrong output',
    'unexpected behaviour', 'troubleshoot', 'diagnose', 'cryptic error', 'OOM killed', 'heap corruption', 'panic',
  ],
};

const ml: ExpertProfile = {
  id: 'ml',
  name: 'Machine learning expert',
  domain: 'ml',
  description:
    'Designs, trains and evaluates machine learning models: classical algorithms and deep neural ' +
    'networks, feature engineering, training loops, hyperparameter tuning, overfitting and ' +
    'regularization, evaluation metrics, transformers and language models, with scikit-learn, ' +
    'PyTorch, TensorFlow and Keras on CPUs and GPUs.',
  keywords: [
    'machine learning', 'deep learning', 'neural network', 'model', 'train', 'fine-tune', 'overfitting',
    'underfitting', 'bias variance tradeoff', 'regularization', 'dropout',
    'learning rate', 'optimizer adam', 'gradient descent', 'backpropagation', 'loss function',
    'validation loss', 'cross entropy', 'accuracy', 'precision recall', 'f1 score', 'auc roc',
    'confusion matrix', 'classification', 'classifier', 'logistic regression', 'linear regression',
    'clustering', 'k-means number of clusters', 'random forest', 'xgboost', 'gradient boosting',
    'decision tree', 'feature engineering', 'normalize standardize features', 'train test split',
    'cross validation', 'hyperparameter tuning', 'scikit-learn', 'sklearn', 'pytorch', 'tensorflow',
    'keras', 'transformer', 'bert', 'llm', 'embeddings', 'cnn', 'lstm',
    'cuda gpu', 'epochs', 'batch size', 'dataset', 'labels', 'inference', 'predictions',
    'imbalanced data', 'data augmentation', 'sentiment analysis', 'reinforcement learning',
  ],
};

const api: ExpertProfile = {
  id: 'api',
  name: 'API expert',
  domain: 'api',
  description:
    'Designs, builds and integrates web APIs: REST and GraphQL endpoints, HTTP methods, status ' +
    'codes and headers, authentication with OAuth and JWT, API keys, CORS, rate limiting, ' +
    'pagination and versioning, OpenAPI specs, webhooks, gRPC, and clients that call third-party APIs.',
  keywords: [
    'api', 'rest', 'restful', 'endpoint', 'http', 'https', 'http request', 'response', 'get post put patch',
    'status code', '400 bad request', '401 unauthorized', '403 forbidden', '404 not found', '422', '429',
    '500 internal server error', 'json payload', 'request body', 'headers', 'content-type',
    'authentication', 'authorization', 'oauth', 'oauth2', 'jwt', 'access token', 'refresh token',
    'bearer token', 'api key', 'cors preflight', 'rate limiting', 'throttling', 'exponential backoff',
    'pagination', 'paginate cursor', 'versioning', 'openapi spec', 'swagger', 'graphql', 'resolver',
    'grpc protobuf', 'webhook', 'webhook signature', 'websocket', 'curl', 'postman', 'fastapi',
    'flask route', 'express', 'middleware', 'idempotency', 'retry', 'timeout', 'sdk', 'third-party integration',
    'microservice', 'api gateway', 'query parameters', 'url',
  ],
};

/**
 * The seed's six experts — `python`, `sql`, `javascript`, `debug`, `ml`, `api` — each with a
 * description and 30 to 60 keywords in the words users type (for `debug`: stack trace,
 * segfault, exception, breakpoint…). A starting set: replace or extend it with your own
 * models and services.
 *
 * @example
 * ```ts
 * import { DEFAULT_EXPERTS, ProfileScorer } from '@capibara/core';
 * const scorer = new ProfileScorer();
 * for (const expert of DEFAULT_EXPERTS) scorer.set(expert);
 * ```
 */
export const DEFAULT_EXPERTS: readonly ExpertProfile[] = Object.freeze(
  [python, sql, javascript, debug, ml, api].map((p) => Object.freeze({ ...p, keywords: Object.freeze([...p.keywords!]) as string[] })),
);
