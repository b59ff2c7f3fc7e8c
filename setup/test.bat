@echo off
rem The test command on Windows: the same installer, the test requirements, then pytest on one worker per
rem CPU, at most 4, whole files to a worker (as setup/test.sh; KOHYA_TEST_WORKERS overrides).
call "%~dp0setup.bat" requirements-test.txt || exit /b 1
pushd "%~dp0.."
set "WORKERS=%KOHYA_TEST_WORKERS%"
if "%WORKERS%"=="" set "WORKERS=%NUMBER_OF_PROCESSORS%"
if %WORKERS% GTR 4 set "WORKERS=4"
"venv\Scripts\python.exe" -m pytest -n %WORKERS% --dist loadfile --no-loadscope-reorder %*
set "RC=%ERRORLEVEL%"
popd & exit /b %RC%
